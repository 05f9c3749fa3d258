"""A request id on every answer (``X-Request-ID``), for matching a citizen's or a
proxy's report to the service's log lines without logging anything about the person.

A well-formed id from the proxy in front (HAProxy's ``unique-id-header``) is kept,
so one id follows a request through both; anything else is replaced by our own.

The id goes into every log line written while the request is handled
(``wallet.logs.REQUEST_ID``), and the id and route template into the WSGI environ,
where gunicorn's access log line takes them from (``wallet.web.gunicorn_conf``).
"""

from __future__ import annotations

import re
import secrets

from flask import Flask, Response, g, has_request_context, request

from wallet.logs import REQUEST_ID

HEADER = "X-Request-ID"
# Keys in the WSGI environ that gunicorn's access log reads (no path: it may hold a secret).
ENVIRON_ID = "wallet.request_id"
ENVIRON_ROUTE = "wallet.route"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{8,64}")


def init_app(app: Flask) -> None:
    @app.before_request
    def _assign() -> None:
        incoming = request.headers.get(HEADER, "")
        g.request_id = incoming if _WELL_FORMED.fullmatch(incoming) else secrets.token_hex(8)
        REQUEST_ID.set(g.request_id)
        request.environ[ENVIRON_ID] = g.request_id

    @app.after_request
    def _answer(response: Response) -> Response:
        response.headers[HEADER] = current()
        request.environ[ENVIRON_ROUTE] = route()
        return response

    @app.teardown_request
    def _forget(_exc: BaseException | None) -> None:
        REQUEST_ID.set(None)  # a worker's lines between requests belong to none


def current() -> str:
    """This request's id ("-" outside a request, or before it was assigned)."""
    if not has_request_context():
        return "-"
    return str(g.get("request_id", "-"))


def route() -> str:
    """The route the request matched, as written in the code (``/p/<secret>``): a log
    line names it instead of the path, which may hold a claim secret or a serial."""
    rule = request.url_rule if has_request_context() else None
    return rule.rule if rule is not None else "(no route)"
