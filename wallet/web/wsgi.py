"""The WSGI entry point: ``gunicorn -c python:wallet.web.gunicorn_conf wallet.web.wsgi:app``.

Each worker imports this module and builds its own app (and database engine)
from the ``WALLET_*`` environment; the gunicorn config does not preload it.
"""

from __future__ import annotations

import gc

from wallet.web import create_app

app = create_app()

# What the worker built at start (~135,000 objects: modules, the app, templates,
# pass types) lives as long as the worker, yet every full collection walked it:
# a 70 ms pause every few thousand requests, stalling every request queued behind
# it. Frozen, a full collection looks only at what requests left behind.
gc.collect()
gc.freeze()
