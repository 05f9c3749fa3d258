"""The WSGI entry point: ``gunicorn -c python:wallet.web.gunicorn_conf wallet.web.wsgi:app``.

Each worker imports this module and builds its own app (and database engine)
from the ``WALLET_*`` environment; the gunicorn config does not preload it.
"""

from __future__ import annotations

from wallet.web import create_app

app = create_app()
