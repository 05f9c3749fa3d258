"""The OpenAPI 3.1 document of /api/v1, built as data next to the routes it describes.

Holder schemas come from the loaded pass types (pass types are data, so a new
type appears here without code) and each operation's roles from the API's own
role table, so the document cannot drift from what the server enforces;
tests/web/test_openapi.py checks the rest against the URL map and real traffic.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping
from typing import Any

from wallet.domain import MAX_REASON_LENGTH, PASS_STATES
from wallet.passtypes import INVISIBLE_CATEGORIES, PassType
from wallet.plates import COUNTRIES, FOREIGN_MAX
from wallet.services.idempotency import HEADER as IDEMPOTENCY_HEADER
from wallet.verifier import REASONS
from wallet.verifier import STATES as VERDICTS

API_VERSION = "1.0.0"


def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": dict(schema)}}}


def _class_of(categories: frozenset[str]) -> str:
    """The code points of ``categories`` as the inside of a regex character class.

    Literal characters, not escapes: ``\\u{...}`` (ECMA) and ``\\U...`` (Python)
    differ, a literal works in both and JSON escapes it in the document.
    """
    ranges: list[tuple[int, int]] = []
    for code in range(0x110000):
        if unicodedata.category(chr(code)) in categories:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


# The custom string format of holder text: no character of INVISIBLE_CATEGORIES.
VISIBLE_TEXT_FORMAT = "visible-text"


@functools.cache
def invisible_class() -> str:
    """Most of what no holder value may contain (wallet.passtypes.invisible_character).

    Unassigned code points (Cn) are left out of the pattern: they are most of
    the code space (700 ranges), which no regex engine or generator handles
    well; the format ``visible-text`` and the description name them. Lone
    surrogates (Cs) are left out too: JSON carries them only as escapes, and a
    pattern holding them would not survive strict JSON parsers. The server
    refuses both all the same.
    """
    return _class_of(INVISIBLE_CATEGORIES - {"Cs", "Cn"})


@functools.cache
def control_class() -> str:
    """Control characters (Cc), which no reason or search text may contain."""
    return _class_of(frozenset({"Cc"}))


def _visible_text(forbidden: str) -> str:
    """A pattern: no forbidden character, and at least one that is not white space."""
    return f"^[^{forbidden}]*[^{forbidden}\\s][^{forbidden}]*$"


def _plate_pattern(german: str, *, foreign: bool) -> str:
    """One plate as stored: the field's German pattern, or a foreign plate's stored form."""
    if not foreign:
        return f"(?:{german})"
    signs = "|".join(sorted(COUNTRIES))
    return f"(?:{german}|(?:{signs}) [A-Z0-9\u00c4\u00d6\u00dc]*[0-9][A-Z0-9\u00c4\u00d6\u00dc]*)"


def _holder_schema(pass_type: PassType) -> dict[str, Any]:
    """The holder fields of one type; patterns apply to the value after normalisation."""
    properties: dict[str, Any] = {}
    for f in pass_type.fields:
        schema: dict[str, Any] = {
            "type": "string",
            "maxLength": f.value_max_length,
            "title": f.label.en,
            "description": f"{f.label.en} ({f.label.de})"
            + ("; shown offline in the pass token" if f.in_token else ""),
        }
        # Anchored: JSON Schema patterns search, Python's fullmatch matches whole.
        if f.kind == "plate":
            schema["description"] += (
                "; a German licence plate, accepted in any spelling (case, space or "
                "dash, look-alike letters) and stored as the pattern shows it; at most 8 "
                "letters and digits in all, the number without a leading 0, and where "
                "the district code ends must be written (D-AB 1234, not DAB1234)"
            )
        if f.foreign:
            schema["description"] += (
                "; or a plate from another country with its country sign first (NL 12-ABC-3, "
                f"stored NL 12ABC3: at most {FOREIGN_MAX} letters and digits, one a digit)"
            )
        if f.max_plates > 1:
            schema["description"] += (
                f"; up to {f.max_plates} plates (a second car), typed separated by commas or "
                "semicolons and stored as D-AB 1234, D-CD 56: each plate as the pattern "
                f"shows it and at most {f.max_length} characters, none twice"
            )
        if f.pattern and f.kind == "plate":
            plate = _plate_pattern(f.pattern.pattern, foreign=f.foreign)
            schema["pattern"] = f"^{plate}(?:, {plate}){{0,{f.max_plates - 1}}}$"
        elif f.pattern:
            schema["pattern"] = f"^(?:{f.pattern.pattern})$"
        else:
            schema["pattern"] = _visible_text(invisible_class())
            schema["format"] = VISIBLE_TEXT_FORMAT
        properties[f.name] = schema
    return {
        "type": "object",
        "description": f"Holder data of a {pass_type.label.en}. Values are normalised to "
        "Unicode NFC and their white space is collapsed; values with a pattern are "
        "upper-cased before they are checked. Refused in every value, naming the field "
        f"(format {VISIBLE_TEXT_FORMAT}): "
        "control and format characters (Unicode Cc, Cf, e.g. U+202E RIGHT-TO-LEFT OVERRIDE, "
        "U+200B ZERO WIDTH SPACE, U+FEFF), private use (Co), unassigned code points and "
        "noncharacters (Cn, e.g. U+FFFF), surrogates (Cs), line and paragraph separators "
        "(U+2028, U+2029).",
        "properties": properties,
        "required": [f.name for f in pass_type.fields],
        "additionalProperties": False,
    }


def _example_holder(pass_type: PassType) -> dict[str, str]:
    known = {
        "card_number": "100200300400",
        "name": "Erika Mustermann",
        "plate": "D-AB 1234",
        "zone": "12",
    }
    return {f.name: known.get(f.name, "Example") for f in pass_type.fields}


def _schemas(pass_types: Mapping[str, PassType], max_limit: int) -> dict[str, Any]:
    timestamp = {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 with a time zone, e.g. 2026-12-01T00:00:00Z",
    }
    optional_timestamp = {"type": ["string", "null"], "format": "date-time"}
    no_controls = f"^[^{control_class()}]*$"
    plain = (
        "Plain text for the audit log: no control characters (Unicode Cc, line breaks "
        "included) and no surrogates."
    )
    reason: dict[str, Any] = {
        "type": ["string", "null"],
        "maxLength": MAX_REASON_LENGTH,
        "pattern": no_controls,
        "description": plain,
    }
    pass_properties: dict[str, Any] = {
        "serial": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
        "type": {"type": "string", "enum": sorted(pass_types)},
        "state": {"type": "string", "enum": list(PASS_STATES)},
        "holder": {"type": "object", "additionalProperties": {"type": "string"}},
        "valid_from": _ref("Timestamp"),
        "valid_until": _ref("Timestamp"),
        "reason": {"type": ["string", "null"], "description": "Why it was last changed."},
        "replaces": {"type": ["string", "null"], "description": "The serial it replaced."},
        "replaced_by": {"type": ["string", "null"], "description": "The serial of its reissue."},
        "created_at": _ref("Timestamp"),
        "updated_at": _ref("Timestamp"),
        "kid": {"type": "string", "description": "The id of the key that signed its token."},
        "token": {"type": "string", "description": "The signed pass token (compact JWS)."},
        "qr_text": {"type": "string", "description": "What the QR code holds (WP1...)."},
    }
    pass_required = list(pass_properties)
    schemas: dict[str, Any] = {
        "Timestamp": timestamp,
        "Error": {
            "type": "object",
            "description": "The one error shape of the whole service.",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {"type": "string", "description": "A stable slug for machines."},
                        "message": {"type": "string", "description": "For people."},
                        "field": {
                            "type": "string",
                            "description": "The field, query parameter or header at fault "
                            "(holder fields as holder.<name>).",
                        },
                        "report": {
                            "$ref": "#/components/schemas/ImportReport",
                            "description": "An import refused for invalid rows: what is wrong.",
                        },
                    },
                }
            },
        },
        "ImportReport": {
            "type": "object",
            "description": "The check of every row of an import, before anything is issued.",
            "additionalProperties": False,
            "required": [
                "type",
                "rows",
                "to_issue",
                "issued_before",
                "invalid_rows",
                "ignored_columns",
                "problems",
            ],
            "properties": {
                "type": {"type": "string"},
                "rows": {"type": "integer", "minimum": 0},
                "to_issue": {"type": "integer", "minimum": 0},
                "issued_before": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Rows whose key an earlier import issued.",
                },
                "invalid_rows": {"type": "integer", "minimum": 0},
                "ignored_columns": {"type": "array", "items": {"type": "string"}},
                "problems": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["row", "column", "code", "message"],
                        "properties": {
                            "row": {
                                "type": "integer",
                                "minimum": 1,
                                "description": "As Excel numbers it (the header is 1).",
                            },
                            "column": {"type": "string"},
                            "code": {"type": "string"},
                            "message": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["de", "en"],
                                "properties": {"de": {"type": "string"}, "en": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
        "ImportResult": {
            "type": "object",
            "additionalProperties": False,
            "required": ["report", "results"],
            "properties": {
                "report": {"$ref": "#/components/schemas/ImportReport"},
                "results": {
                    "type": "array",
                    "description": "One entry per input row; claim links are shown only here.",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": [
                            "row",
                            "key",
                            "status",
                            "serial",
                            "claim_url",
                            "channel",
                            "error",
                        ],
                        "properties": {
                            "row": {"type": "integer"},
                            "key": {"type": "string"},
                            "status": {
                                "type": "string",
                                "enum": ["issued", "issued_before", "skipped"],
                            },
                            "serial": {"type": "string"},
                            "claim_url": {"type": "string"},
                            "channel": {"type": "string", "enum": ["link", "email", ""]},
                            "error": {"type": "string"},
                        },
                    },
                },
            },
        },
        "Pass": {
            "type": "object",
            "required": pass_required,
            "additionalProperties": False,
            "properties": pass_properties,
        },
        "EmailedLink": {
            "type": "object",
            "description": "The pass; its new claim link is on its way by e-mail, not shown.",
            "required": [*pass_required, "claim_link_sent_by"],
            "additionalProperties": False,
            "properties": {**pass_properties, "claim_link_sent_by": {"const": "email"}},
        },
        "ClaimLinkRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "reason": reason,
                "email": {
                    "type": "string",
                    "maxLength": 254,
                    "description": "Send the new link to this address (through the outbox) "
                    "instead of answering with it: one address like erika.mustermann@example.de, "
                    "else 422 with field email; 422 too when e-mail is not set up. The address "
                    "is used for this message only and not stored.",
                },
                "lang": {
                    "type": "string",
                    "enum": ["de", "en"],
                    "description": "The holder's language, first in the message (default de). "
                    "Only together with email.",
                },
            },
        },
        "IssuedPass": {
            "type": "object",
            "description": "A new pass with its claim link, which is shown only here.",
            "required": [*pass_required, "claim_url", "downloads"],
            "additionalProperties": False,
            "properties": {
                **pass_properties,
                "claim_url": {
                    "type": "string",
                    "format": "uri",
                    "description": "Absolute link for the citizen; the secret in it is stored "
                    "only hashed, so it cannot be looked up again.",
                },
                "downloads": {
                    "type": "object",
                    "description": "Direct links below the claim link (same secret): the "
                    "Apple Wallet pass and the Google Wallet save link (each only when that "
                    "wallet is set up), the card as PDF (ID-1) and PNG, and an A4 sheet to print.",
                    "required": ["card_pdf", "print_sheet_pdf", "card_png"],
                    "additionalProperties": False,
                    "properties": {
                        name: {"type": "string", "format": "uri"}
                        for name in (
                            "apple_wallet",
                            "google_wallet",
                            "card_pdf",
                            "print_sheet_pdf",
                            "card_png",
                        )
                    },
                },
            },
        },
        "PassPage": {
            "type": "object",
            "required": ["items", "total", "limit", "offset"],
            "additionalProperties": False,
            "properties": {
                "items": {"type": "array", "items": _ref("Pass")},
                "total": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 1, "maximum": max_limit},
                "offset": {"type": "integer", "minimum": 0},
            },
        },
        "Reason": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"reason": reason},
        },
        "ReissueRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "reason": reason,
                "holder": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "The holder fields that change on the new pass, as at "
                    'issue (a new car: {"plate": "D-XY 1"}); the others stay. A field '
                    "the pass type does not have, or a value it refuses: 422 naming "
                    "holder.<field>. The old pass's plates are free before the new ones "
                    "are taken.",
                },
            },
        },
        "RenewRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "valid_until": {
                    **optional_timestamp,
                    "description": "End of the new pass (default and maximum: one validity "
                    "period of the pass type after the old pass's end, or after now if it has "
                    "run out). Must lie in the future, else 422 with field valid_until.",
                }
            },
        },
        "RevokeRequest": {
            "type": "object",
            "required": ["reason"],
            "additionalProperties": False,
            "properties": {
                "reason": {
                    **reason,
                    "type": "string",
                    "pattern": _visible_text(control_class()),
                    "description": "Why, for the audit log: not only white space. " + plain,
                }
            },
        },
        "VerifyRequest": {
            "type": "object",
            "required": ["token"],
            "additionalProperties": False,
            "properties": {
                "token": {"type": "string", "description": "Scanned QR text or a compact JWS."}
            },
        },
        "VerificationResult": {
            "type": "object",
            "description": "Exactly what the offline verifier (wallet-verify) reports.",
            "required": ["state", "reason", "admit", "message", "claims", "warnings", "detail"],
            "additionalProperties": False,
            "properties": {
                "state": {
                    "type": "string",
                    "enum": list(VERDICTS),
                    "description": "stale_status and status_unchecked are amber: a genuine "
                    "pass whose revocation status could not be checked against a fresh list.",
                },
                "reason": {"type": "string", "enum": list(REASONS)},
                "admit": {
                    "type": "boolean",
                    "description": "Whether the holder may pass: true when valid; for an "
                    "amber state, the pass type's status policy decides.",
                },
                "message": {
                    "type": "object",
                    "required": ["de", "en"],
                    "additionalProperties": False,
                    "properties": {"de": {"type": "string"}, "en": {"type": "string"}},
                },
                "claims": {"type": "object", "description": "What the token shows offline."},
                "warnings": {"type": "array", "items": {"type": "string"}},
                "detail": {"type": "string"},
            },
        },
    }
    mapping: dict[str, str] = {}
    variants: list[dict[str, str]] = []
    for type_id, pass_type in sorted(pass_types.items()):
        name = f"Issue{type_id.title().replace('-', '').replace('_', '')}Request"
        schemas[f"{name[:-7]}Holder"] = _holder_schema(pass_type)
        schemas[name] = {
            "type": "object",
            "required": ["type", "holder"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": type_id},
                "holder": _ref(f"{name[:-7]}Holder"),
                "valid_from": {
                    **optional_timestamp,
                    "description": "Start of validity (default: now). Must lie within the "
                    "window [now - 1 day, now + 366 days] (checked against the server's "
                    "clock; JSON Schema cannot say this), else 422 with field valid_from.",
                },
                "valid_until": {
                    **optional_timestamp,
                    "description": "End of validity (default and maximum: the pass type's "
                    "validity from valid_from). Must lie after valid_from and after now, else "
                    "422 with field valid_until.",
                },
            },
        }
        mapping[type_id] = f"#/components/schemas/{name}"
        variants.append(_ref(name))
    schemas["IssueRequest"] = {
        "oneOf": variants,
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
    return schemas


def _responses(max_body_bytes: int) -> dict[str, Any]:
    error = _ref("Error")
    return {
        "BadRequest": _json(
            error,
            "The request cannot be read: malformed JSON, duplicate members, not "
            "application/json (field says which).",
        ),
        "Unauthorized": {
            **_json(error, "No API token, or an unknown or revoked one (code unauthorized)."),
            "headers": {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
            },
        },
        "Forbidden": _json(error, "The token's role may not do this (code forbidden)."),
        "NotFound": _json(error, "No pass with this serial (code not_found)."),
        "Conflict": _json(
            error,
            "The action does not fit the pass's state (code invalid_transition), or the "
            "plate already has a live permit in that zone (code permit_exists).",
        ),
        "PayloadTooLarge": _json(
            error,
            f"The body is larger than {max_body_bytes} bytes (code payload_too_large), "
            "whether it is sent with Content-Length or chunked. A body that was not read to "
            "its end is answered with Connection: close.",
        ),
        "Unprocessable": _json(
            error,
            "A value is not acceptable; field names it (holder fields as holder.<name>). "
            "Also idempotency_key_reused.",
        ),
        "UriTooLong": _json(
            error,
            "The request line is longer than the server reads (code uri_too_long). Answered "
            "by the HTTP server itself, before any check; the connection then closes.",
        ),
        "HeaderFieldsTooLarge": _json(
            error,
            "A header, or all of them, larger than the server reads (code "
            "request_header_fields_too_large; a malformed request line or header is a 400 "
            "bad_request). Answered by the HTTP server itself; the connection then closes.",
        ),
    }


def _errors(*statuses: int) -> dict[str, Any]:
    names = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        413: "PayloadTooLarge",
        414: "UriTooLong",
        422: "Unprocessable",
        431: "HeaderFieldsTooLarge",
    }
    return {str(s): _ref(names[s], "responses") for s in sorted({401, 403, 414, 431, *statuses})}


def _operation(
    operation_id: str,
    roles: Mapping[str, frozenset[str]],
    *,
    summary: str,
    description: str = "",
    responses: Mapping[str, Any],
    body: Mapping[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    allowed = sorted(roles[operation_id])
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "description": (description + "\n\n" if description else "")
        + f"Roles: {', '.join(allowed)}.",
        "x-roles": allowed,
        "responses": dict(responses),
    }
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = dict(body)
    return operation


def build_document(
    *,
    pass_types: Mapping[str, PassType],
    roles: Mapping[str, frozenset[str]],
    max_body_bytes: int,
    max_limit: int,
    default_limit: int,
    max_offset: int,
) -> dict[str, Any]:
    """The whole document; ``roles`` maps each operationId (= endpoint name) to its roles."""
    serial = _ref("Serial", "parameters")
    no_controls = f"^[^{control_class()}]*$"
    idempotency_key = _ref("IdempotencyKey", "parameters")
    created = {
        "description": "The new pass. Location names it. A replay of an Idempotency-Key "
        "returns the first answer, with Idempotent-Replayed: true.",
        "headers": {
            "Location": {"schema": {"type": "string"}, "description": "The pass's URL."},
            "Idempotent-Replayed": {
                "schema": {"type": "string", "enum": ["true"]},
                "description": "Present when this is the stored first answer.",
            },
        },
        "content": {"application/json": {"schema": _ref("IssuedPass")}},
    }
    one_pass = _json(_ref("Pass"), "The pass after the change.")
    examples = {
        type_id: {
            "summary": f"A {pass_type.label.en}",
            "value": {"type": type_id, "holder": _example_holder(pass_type)},
        }
        for type_id, pass_type in sorted(pass_types.items())
    }

    def reason_body(name: str, *, required: bool) -> dict[str, Any]:
        return {
            "required": required,
            "content": {"application/json": {"schema": _ref(name)}},
        }

    paths: dict[str, Any] = {
        "/passes": {
            "post": _operation(
                "create_pass",
                roles,
                summary="Issue a pass",
                description="Signs a pass token, stores the pass and returns its claim link. "
                "Send an Idempotency-Key to make retries safe.",
                parameters=[idempotency_key],
                body={
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("IssueRequest"), "examples": examples}
                    },
                },
                responses={"201": created, **_errors(400, 409, 413, 422)},
            ),
            "get": _operation(
                "list_passes",
                roles,
                summary="List and search passes, newest first",
                parameters=[
                    {
                        "name": "type",
                        "in": "query",
                        "description": "Only passes of this type; empty means any type.",
                        "schema": {"type": "string", "enum": [*sorted(pass_types), ""]},
                    },
                    {
                        "name": "state",
                        "in": "query",
                        "description": "Only passes in this state; empty means any state.",
                        "schema": {"type": "string", "enum": [*PASS_STATES, ""]},
                    },
                    {
                        "name": "q",
                        "in": "query",
                        "description": "Text in any holder field, or an exact serial; empty "
                        "means no search. No control characters (Unicode Cc).",
                        "schema": {"type": "string", "maxLength": 200, "pattern": no_controls},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": max_limit,
                            "default": default_limit,
                        },
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": max_offset,
                            "default": 0,
                        },
                    },
                ],
                responses={"200": _json(_ref("PassPage"), "One page of passes."), **_errors(422)},
            ),
        },
        "/passes/{serial}": {
            "get": _operation(
                "get_pass",
                roles,
                summary="One pass, with its token and QR text for reprinting",
                description="The claim link is not included: it exists only hashed.",
                parameters=[serial],
                responses={"200": _json(_ref("Pass"), "The pass."), **_errors(404)},
            )
        },
        "/passes/{serial}/revoke": {
            "post": _operation(
                "revoke_pass",
                roles,
                summary="Revoke a pass for good",
                description="Verifiers see it at their next sync (the status list changes in "
                "the same transaction).",
                parameters=[serial],
                body=reason_body("RevokeRequest", required=True),
                responses={"200": one_pass, **_errors(400, 404, 409, 413, 422)},
            )
        },
        "/passes/{serial}/suspend": {
            "post": _operation(
                "suspend_pass",
                roles,
                summary="Suspend a pass (only types that allow it)",
                parameters=[serial],
                body=reason_body("Reason", required=False),
                responses={"200": one_pass, **_errors(400, 404, 409, 413, 422)},
            )
        },
        "/passes/{serial}/reinstate": {
            "post": _operation(
                "reinstate_pass",
                roles,
                summary="Lift a suspension",
                parameters=[serial],
                body=reason_body("Reason", required=False),
                responses={"200": one_pass, **_errors(400, 404, 409, 413, 422)},
            )
        },
        "/passes/{serial}/reissue": {
            "post": _operation(
                "reissue_pass",
                roles,
                summary="Replace a pass (lost phone, new car): new serial and token, old one "
                "revoked",
                description="Both happen in one transaction. Send an Idempotency-Key to make "
                "retries safe.",
                parameters=[serial, idempotency_key],
                body=reason_body("ReissueRequest", required=False),
                responses={"201": created, **_errors(400, 404, 409, 413, 422)},
            )
        },
        "/passes/{serial}/renew": {
            "post": _operation(
                "renew_pass",
                roles,
                summary="Renew a pass: a successor with a new expiry, same holder and card number",
                description="The successor takes over the holder's Apple and Google passes "
                "(they update in place) and the contact data; its claim link is shown this "
                "once, and e-mailed when the holder's address is kept and e-mail is set up. "
                "The old token stays valid until the successor is claimed or the pass type's "
                "grace period ends. 409 for a revoked, suspended or already renewed pass. Send "
                "an Idempotency-Key to make retries safe.",
                parameters=[serial, idempotency_key],
                body=reason_body("RenewRequest", required=False),
                responses={"201": created, **_errors(400, 404, 409, 413, 422)},
            )
        },
        "/passes/{serial}/claim-link": {
            "post": _operation(
                "replace_claim_link",
                roles,
                summary="Make a new claim link for the holder (the message was lost)",
                description="The pass, its token and its wallet copies stay as they are; every "
                "older claim link of the pass answers 410 from now on, its page saying it was "
                "replaced. The new link is shown this once (201), or with email sent to the "
                "holder and not shown at all (202). Send an Idempotency-Key to make retries "
                "safe.",
                parameters=[serial, idempotency_key],
                body=reason_body("ClaimLinkRequest", required=False),
                responses={
                    "201": created,
                    "202": _json(_ref("EmailedLink"), "The link is queued for e-mail."),
                    **_errors(400, 404, 409, 413, 422),
                },
            )
        },
        "/imports": {
            "post": _operation(
                "create_import",
                roles,
                summary="Import holders from a CSV export (German Excel works as it is)",
                description="Checks every row first; issues nothing from a file with invalid "
                "rows unless skip_invalid=true (422 with the report). Issues in batches, each "
                "one transaction; rows whose external key (card number; plate and zone) was "
                "issued before are not issued again, so sending the same file twice is safe. "
                "At most 10,000 rows and 4 MiB: larger files go through `wallet import`. The "
                "body: a header row naming the pass type's fields (by its [import] columns, "
                "labels or names, e.g. Ausweisnummer;Name), then one row per holder; ';', ',' "
                "or tab, UTF-8 or Windows-1252. send_email=true needs a mail server "
                "(WALLET_SMTP_*), else 422.",
                parameters=[
                    {
                        "name": "type",
                        "in": "query",
                        "required": True,
                        "description": "The pass type of every row.",
                        "schema": {"type": "string", "enum": sorted(pass_types)},
                    },
                    *(
                        {
                            "name": name,
                            "in": "query",
                            "description": text,
                            "schema": {"type": "string", "enum": ["true", "false"]},
                        }
                        for name, text in (
                            ("dry_run", "Only check and report; issue nothing."),
                            ("skip_invalid", "Issue the valid rows of a file with invalid ones."),
                            (
                                "send_email",
                                "Send rows with an e-mail address their link by "
                                "e-mail (needs WALLET_SMTP_*).",
                            ),
                        )
                    ),
                ],
                body={
                    "required": True,
                    "content": {"text/csv": {"schema": {"type": "string"}}},
                },
                responses={
                    "200": _json(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["report"],
                            "properties": {"report": _ref("ImportReport")},
                        },
                        "dry_run=true: the check report.",
                    ),
                    "201": _json(_ref("ImportResult"), "Issued: the report and each row's result."),
                    **_errors(400, 413, 422),
                },
            )
        },
        "/verify": {
            "post": _operation(
                "verify",
                roles,
                summary="Check a scanned pass online, against the current status",
                description="Runs the offline verifier on the bundle as published right now, "
                "so the result has the same shape a staff device shows.",
                body={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("VerifyRequest")}},
                },
                responses={
                    "200": _json(_ref("VerificationResult"), "The verdict (also for bad tokens)."),
                    **_errors(400, 413, 422),
                },
            )
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi_document",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "City wallet passes API",
            "version": API_VERSION,
            "description": "Issue, look up, revoke and verify the city's signed digital passes. "
            'Every error has the shape {"error": {"code", "message"[, "field"]}}.',
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "wpt_... API token (wallet api-tokens create)",
                    "description": "Roles: admin and issuer manage passes; verifier may only "
                    "verify.",
                }
            },
            "parameters": {
                "Serial": {
                    "name": "serial",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
                },
                "IdempotencyKey": {
                    "name": IDEMPOTENCY_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Any unique value per intended request (a UUID, say). A retry "
                    "with the same key and body from the same token returns the first "
                    "answer; the same key with another body is refused (422 "
                    "idempotency_key_reused).",
                    "schema": {"type": "string", "pattern": "^[\\x20-\\x7e]{1,255}$"},
                },
            },
            "schemas": _schemas(pass_types, max_limit),
            "responses": _responses(max_body_bytes),
        },
    }
