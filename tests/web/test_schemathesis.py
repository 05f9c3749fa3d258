"""schemathesis against the OpenAPI document, in-process (WSGI), every check, bounded.

The app is served by Werkzeug's WSGI server on a loopback port in a thread of
the test process (schemathesis' own WSGI transport trips over its engine's
network-only options), so requests are real HTTP but the app is the one built
by the fixtures, over the test database.

The document must state what the server enforces: schema-valid requests are
accepted, schema-invalid ones refused, every answer has a documented status,
content type, headers and body. All phases run (examples, coverage, fuzzing,
stateful links) with a few examples each, so this stays well under a minute.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.engine import Status, from_schema
from schemathesis.engine.events import EngineFinished, FatalError, NonFatalError, ScenarioFinished
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.formats import unregister_string_format
from werkzeug.serving import make_server

from tests.factories import HOLDERS, fresh_holder
from wallet.passtypes import INVISIBLE_CATEGORIES
from wallet.services import passes
from wallet.services.context import Services
from wallet.services.idempotency import HEADER as IDEMPOTENCY_HEADER
from wallet.store.db import Database
from wallet.web.openapi import VISIBLE_TEXT_FORMAT

MAX_EXAMPLES = 10
# Checks that must have run at least once: schemathesis' built-in set (all are enabled).
EXPECTED_CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "missing_required_header",
    "ignored_auth",
    "unsupported_method",
    "use_after_free",
    "ensure_resource_availability",
    "allow_header_conformance",
    "object_level_authorization",
}
# Holder text the server accepts (wallet.passtypes.INVISIBLE_CATEGORIES), for the
# document's format visible-text: a regex over the unassigned code points would be huge.
VISIBLE_TEXT = st.text(
    st.characters(exclude_categories=tuple(INVISIBLE_CATEGORIES)), min_size=1, max_size=40
).filter(str.strip)


def as_the_document_says_in_words(now: datetime) -> Callable[[Any, Case], Case]:
    """What the document can only state in words, applied to positive cases.

    JSON Schema has no "date-time at least now - 1 day", so a well-formed
    ``valid_from``/``valid_until`` is moved into the window the document
    describes; and an Idempotency-Key reused with another body is refused as
    documented (422), so each positive case gets a fresh key. A negative case
    keeps whatever made it invalid.
    """

    def map_case(context: Any, case: Case) -> Case:
        body = case.body
        if case.operation.label == "POST /imports":
            return _a_csv_export(case)
        positive = case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE
        if not positive:
            return case
        if case.headers and IDEMPOTENCY_HEADER in case.headers:
            case.headers[IDEMPOTENCY_HEADER] = uuid.uuid4().hex
        if case.operation.label == "POST /passes/{serial}/claim-link" and isinstance(body, dict):
            # In words: e-mail needs a mail server, which this app has not (422 as documented).
            body.pop("email", None)
            body.pop("lang", None)
        if case.operation.label == "POST /passes/{serial}/reissue" and isinstance(body, dict):
            # In words: the holder fields that change are the pass type's own.
            body.pop("holder", None)
        timed = ("POST /passes", "POST /passes/{serial}/renew")
        if case.operation.label not in timed or not isinstance(body, dict):
            return case
        holder = body.get("holder")
        if body.get("type") == "parking" and isinstance(holder, dict) and "plate" in holder:
            # In words: at most 8 letters and digits (JSON Schema cannot count them).
            holder["plate"] = fresh_holder("parking")["plate"]
        if isinstance(body.get("valid_from"), str):
            body["valid_from"] = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        if isinstance(body.get("valid_until"), str):
            body["valid_until"] = (now + timedelta(days=30)).isoformat().replace("+00:00", "Z")
        return case

    return map_case


def _a_csv_export(case: Case) -> Case:
    """The document says in words what the CSV holds: a header naming the pass type's
    fields, then one row per holder; and that send_email needs a mail server. A case
    generated invalid in some part keeps that part as it is."""
    meta = case.meta
    query = case.query or {}
    if meta is None or not meta.is_negative_at(ParameterLocation.BODY):
        number = str(uuid.uuid4().int)[:12].rjust(12, "1")
        plate = f"D-AB {int(number[:4]) % 9000 + 1}"
        rows = {
            "library": f"Ausweisnummer;Name\r\n{number};Erika Mustermann\r\n",
            "parking": f"Kennzeichen;Zone\r\n{plate};12\r\n",
        }
        case.body = rows.get(str(query.get("type")), rows["library"])  # a string, as documented
        if meta is not None:
            meta.mark_dirty(ParameterLocation.BODY)
    if query.get("send_email") in ("true", True) and (
        meta is None or not meta.is_negative_at(ParameterLocation.QUERY)
    ):
        query["send_email"] = False  # no mail server in this test
        if meta is not None:
            meta.mark_dirty(ParameterLocation.QUERY)
    return case


@contextlib.contextmanager
def serving(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def run_schemathesis(app: Flask, token: str) -> tuple[list[str], set[str]]:
    """Every failed check and error as text, and the names of the checks that ran."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": 20261203,
            "headers": {"Authorization": f"Bearer {token}"},
            "checks": {"enabled": True},
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
        }
    )
    problems: list[str] = []
    checked: set[str] = set()
    with serving(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json", config=config)
        schema.config.update(base_url=f"{url}/api/v1")
        schema.hook(as_the_document_says_in_words(app.extensions["wallet"].clock()))
        schemathesis.openapi.format(VISIBLE_TEXT_FORMAT, VISIBLE_TEXT)
        try:
            events = list(from_schema(schema).execute())
        finally:
            unregister_string_format(VISIBLE_TEXT_FORMAT)
    for event in events:
        if isinstance(event, ScenarioFinished):
            for nodes in event.recorder.checks.values():
                for node in nodes:
                    checked.add(node.name)
                    if node.status == Status.FAILURE and node.failure_info is not None:
                        failure = node.failure_info.failure
                        problems.append(
                            f"{event.recorder.label}: {node.name}: {failure.title}: "
                            f"{failure.message}\n    {node.failure_info.code_sample}"
                        )
        elif isinstance(event, NonFatalError):
            problems.append(f"{event.label}: error: {event.value!r}")
        elif isinstance(event, FatalError):
            problems.append(f"fatal: {event.exception!r}")
        elif isinstance(event, EngineFinished):
            break
    return problems, checked


# The contract is the same on every backend (test_api and test_openapi run on both); once keeps
# the suite bounded.
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_the_api_keeps_what_its_openapi_document_promises(
    app: Flask, db: Database, services: Services, make_token: Callable[[str], str]
) -> None:
    with db.transaction(write=True) as session:  # something to find, change and reissue
        for type_id in ("library", "parking"):
            passes.issue_pass(
                session, services, type_id=type_id, holder=dict(HOLDERS[type_id]),
                actor="test", now=app.extensions["wallet"].clock(),
            )  # fmt: skip
    problems, checked = run_schemathesis(app, make_token("admin"))
    assert not problems, "\n".join(problems)
    assert checked >= EXPECTED_CHECKS, EXPECTED_CHECKS - checked  # it ran, with every check
