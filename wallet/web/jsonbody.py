"""Reading a JSON request body strictly, for every JSON endpoint (the API, the device API).

Duplicate members, NaN and Infinity are refused (different parsers read them
differently); the wrong media type, broken UTF-8 and broken JSON are 400s that
name the ``body`` or the header, never 500s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, NoReturn

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from wallet.errors import InputError, WalletError

__all__ = ["ApiError", "read_json_object"]


class ApiError(WalletError):
    """An error of the request itself (credentials, body syntax): it carries its HTTP status."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.field = field
        self.headers = dict(headers or {})


def _malformed(message: str) -> NoReturn:
    raise ApiError(message, code="malformed_json", status=400, field="body")


class _DuplicateMember(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Duplicate members mean different things to different parsers: refuse them."""
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _DuplicateMember(f"the member {name!r} appears twice")
        result[name] = value
    return result


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def _refuse_constant(text: str) -> NoReturn:
    raise ValueError(f"{text} is not JSON")


def read_json_object(max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object; an empty body counts as an object without members."""
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge as exc:
        raise ApiError(
            f"the request body is larger than {max_bytes} bytes",
            code="payload_too_large",
            status=413,
            field="body",
        ) from exc
    if not data:
        return {}
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype != "application/json" or charset not in ("utf-8", "utf8"):
        raise ApiError(
            "send the body as Content-Type: application/json (UTF-8)",
            code="unsupported_media_type",
            status=400,
            field="Content-Type",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _malformed("the body is not UTF-8")
    try:
        body = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_float=_finite_float,
            parse_constant=_refuse_constant,
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        _malformed(f"the body is not valid JSON: {str(exc)[:200]}")
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object", field="body")
    return body
