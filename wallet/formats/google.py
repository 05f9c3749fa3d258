"""Google Wallet generic passes: the class and object JSON, and the save link.

Pure: the builders take a :class:`WalletPass`, a design and ids and return the
dictionaries Google's REST API and save JWT expect; the only I/O is reading a
service-account key file or a design file given by path. Google's camelCase
names appear here and in :mod:`wallet.push.google_api`, nowhere else.

The QR code on the Google pass carries the same signed token as every other
wrapping, so a staff device verifies it offline like any other pass; Google's
object ``state`` only changes how the pass looks in the holder's wallet.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from wallet.domain import PassState, WalletPass
from wallet.errors import ConfigError, InputError, PassTypeError
from wallet.passtypes import PassType, Text

__all__ = [
    "MAX_SAVE_LINK_LENGTH",
    "SAVE_URL_PREFIX",
    "GoogleDesign",
    "ServiceAccount",
    "class_id",
    "generic_class",
    "generic_object",
    "load_google_design",
    "load_service_account",
    "object_id",
    "save_url",
    "state_patch",
]

# Some browsers and link shorteners cut URLs near 2,000 characters; Google asks
# to keep save links shorter and to insert large objects over REST first.
MAX_SAVE_LINK_LENGTH = 1800
SAVE_URL_PREFIX = "https://pay.google.com/gp/v/save/"
MIN_RSA_BITS = 2048

_ISSUER_ID_RE = re.compile(r"[0-9]{1,32}")
_SUFFIX_RE = re.compile(r"[A-Za-z0-9._-]{1,200}")
_GOOGLE_ID_RE = re.compile(r"[0-9]{1,32}\.[A-Za-z0-9._-]{1,200}")
_COLOUR_RE = re.compile(r"#[0-9A-Fa-f]{6}")
_LOGO_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._/-]{0,199}")
_KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_EMAIL_RE = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9.-]{1,255}")
_ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

# The generic types Google knows; a typo in a design must fail at start-up.
GENERIC_TYPES = frozenset({
    "GENERIC_TYPE_UNSPECIFIED", "GENERIC_SEASON_PASS", "GENERIC_UTILITY_BILLS",
    "GENERIC_PARKING_PASS", "GENERIC_VOUCHER", "GENERIC_GYM_MEMBERSHIP",
    "GENERIC_LIBRARY_MEMBERSHIP", "GENERIC_RESERVATIONS", "GENERIC_AUTO_INSURANCE",
    "GENERIC_HOME_INSURANCE", "GENERIC_ENTRY_TICKET", "GENERIC_RECEIPT",
    "GENERIC_LOYALTY_CARD", "GENERIC_OTHER",
})  # fmt: skip

# Google has no "suspended": a suspended permit must not look usable, and
# INACTIVE (unlike EXPIRED or COMPLETED) can be set back to ACTIVE later.
GOOGLE_STATES: dict[PassState, str] = {
    PassState.VALID: "ACTIVE",
    PassState.SUSPENDED: "INACTIVE",
    PassState.REVOKED: "INACTIVE",
}
# The same words as the citizen page and the console.
STATE_TEXTS: dict[PassState, Text] = {
    PassState.VALID: Text(de="Gültig", en="Valid"),
    PassState.SUSPENDED: Text(de="Vorübergehend gesperrt", en="Suspended"),
    PassState.REVOKED: Text(de="Widerrufen", en="Revoked"),
}
STATE_LABEL = Text(de="Status", en="Status")
# Text module ids: holder fields get a prefix, so no field name can collide with the state.
STATE_MODULE_ID = "state"
_FIELD_MODULE_PREFIX = "holder_"
MAX_FRONT_FIELDS = 3  # a card row holds at most three items


# --- the service account ---------------------------------------------------------------


@dataclass(frozen=True)
class ServiceAccount:
    """The Google Cloud service account that signs save links and API token requests.

    The private key never appears in ``repr`` (or in any error message), so an
    account can be logged or shown in a traceback safely.
    """

    email: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    private_key_id: str
    token_uri: str


def load_service_account(path: Path) -> ServiceAccount:
    """Read a service-account JSON key file as Google's console downloads it.

    :raises ConfigError: naming the file and what is wrong with it.
    """
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"Google service account file {path} cannot be read: {exc.strerror or exc}"
        ) from exc
    try:
        raw = json.loads(raw_bytes)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Google service account file {path} is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        # The decoder's message names a position, never the document's content.
        raise ConfigError(
            f"Google service account file {path} is not JSON "
            f"(line {exc.lineno}, column {exc.colno})"
        ) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"Google service account file {path} must hold a JSON object")
    if raw.get("type") != "service_account":
        raise ConfigError(
            f'Google service account file {path}: "type" must be "service_account" '
            "(is this an OAuth client file instead of a service account key?)"
        )
    values: dict[str, str] = {}
    for name in ("client_email", "private_key_id", "private_key", "token_uri"):
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"Google service account file {path}: {name} is missing or empty")
        values[name] = value
    if not _EMAIL_RE.fullmatch(values["client_email"]):
        raise ConfigError(
            f"Google service account file {path}: client_email is not an e-mail address"
        )
    if not _KEY_ID_RE.fullmatch(values["private_key_id"]):
        raise ConfigError(
            f"Google service account file {path}: private_key_id must be letters and digits"
        )
    _check_token_uri(values["token_uri"], where=f"Google service account file {path}")
    return ServiceAccount(
        email=values["client_email"],
        private_key=_rsa_key(values["private_key"], path),
        private_key_id=values["private_key_id"],
        token_uri=values["token_uri"],
    )


def _rsa_key(pem: str, path: Path) -> rsa.RSAPrivateKey:
    where = f"Google service account file {path}: private_key"
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except TypeError as exc:
        # cryptography raises TypeError when the PEM is encrypted and no password is given.
        raise ConfigError(f"{where} is encrypted; Google key files never are") from exc
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
        # Never echo the text: it is (part of) a secret.
        raise ConfigError(f"{where} is not a PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{where} is not an RSA key (Google signs with RS256)")
    if key.key_size < MIN_RSA_BITS:
        raise ConfigError(f"{where} has {key.key_size} bits; at least {MIN_RSA_BITS} are needed")
    return key


def _check_token_uri(uri: str, *, where: str) -> None:
    """The assertion is a credential: it travels over TLS, or stays on this machine."""
    parts = urlsplit(uri)
    local = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
    if not (parts.scheme == "https" and parts.hostname) and not local:
        raise ConfigError(f"{where}: token_uri must be an https URL")


# --- the design of a pass type ---------------------------------------------------------


@dataclass(frozen=True)
class GoogleDesign:
    """How one pass type looks in Google Wallet, read from its ``google/design.toml``.

    ``logo`` is a path below the service's public URL: Google fetches images
    itself, so they must be public and are never embedded in the pass.
    """

    background_color: str
    logo: str
    generic_type: str = "GENERIC_TYPE_UNSPECIFIED"
    card_title: Text | None = None
    header_field: str | None = None
    front_fields: tuple[str, ...] = ()
    source: str = "google/design.toml"


def load_google_design(folder: Path) -> GoogleDesign:
    """Read ``<folder>/google/design.toml``, where ``folder`` is a pass type's folder.

    :raises PassTypeError: naming the file and what is wrong with it.
    """
    path = folder / "google" / "design.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PassTypeError(f"{path} does not exist: the pass type has no Google design") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PassTypeError(f"{path}: cannot be read: {exc}") from exc
    return parse_google_design(raw, source=str(path))


def parse_google_design(raw: dict[str, Any], *, source: str) -> GoogleDesign:
    """Build a design from its parsed TOML, refusing anything odd."""
    known = {
        "background_color",
        "logo",
        "generic_type",
        "card_title",
        "header_field",
        "front_fields",
    }
    unknown = set(raw) - known
    if unknown:
        raise PassTypeError(f"{source}: unknown keys: {', '.join(sorted(unknown))}")
    colour = raw.get("background_color")
    if not isinstance(colour, str) or not _COLOUR_RE.fullmatch(colour):
        raise PassTypeError(f'{source}: background_color must be a hex colour like "#0b3a75"')
    logo = raw.get("logo")
    if not isinstance(logo, str) or not _LOGO_RE.fullmatch(logo) or ".." in logo.split("/"):
        raise PassTypeError(
            f'{source}: logo must be a relative path below the public URL, like "static/logo.png"'
        )
    generic_type = raw.get("generic_type", "GENERIC_TYPE_UNSPECIFIED")
    if generic_type not in GENERIC_TYPES:
        raise PassTypeError(
            f"{source}: generic_type must be one of {', '.join(sorted(GENERIC_TYPES))}"
        )
    card_title = None
    if "card_title" in raw:
        title = raw["card_title"]
        if (
            not isinstance(title, dict)
            or set(title) != {"de", "en"}
            or not all(isinstance(v, str) and v.strip() for v in title.values())
        ):
            raise PassTypeError(f"{source}: card_title needs non-empty text in exactly de and en")
        card_title = Text(de=title["de"], en=title["en"])
    header_field = raw.get("header_field")
    if header_field is not None and not isinstance(header_field, str):
        raise PassTypeError(f"{source}: header_field must be the name of a holder field")
    front = raw.get("front_fields", [])
    if (
        not isinstance(front, list)
        or not all(isinstance(name, str) for name in front)
        or len(front) > MAX_FRONT_FIELDS
        or len(set(front)) != len(front)
    ):
        raise PassTypeError(
            f"{source}: front_fields must list at most {MAX_FRONT_FIELDS} distinct holder fields"
        )
    return GoogleDesign(
        background_color=colour,
        logo=logo,
        generic_type=generic_type,
        card_title=card_title,
        header_field=header_field,
        front_fields=tuple(front),
        source=source,
    )


def _check_design(design: GoogleDesign, pass_type: PassType) -> None:
    """A design can only name fields its pass type has."""
    names = {f.name for f in pass_type.fields}
    for name in (design.header_field, *design.front_fields):
        if name is not None and name not in names:
            raise PassTypeError(
                f"{design.source}: {name!r} is not a holder field of pass type {pass_type.id}"
            )


# --- ids -------------------------------------------------------------------------------


def _google_id(issuer_id: str, suffix: str, *, field_name: str) -> str:
    if not _ISSUER_ID_RE.fullmatch(issuer_id):
        raise ConfigError(
            f"Google Wallet issuer id {issuer_id!r} must be the number Google assigned"
        )
    if not _SUFFIX_RE.fullmatch(suffix):
        raise InputError(
            f"{field_name} {suffix!r} cannot be part of a Google id "
            "(letters, digits, '.', '_' and '-' only)",
            field=field_name,
        )
    return f"{issuer_id}.{suffix}"


def class_id(issuer_id: str, pass_type_id: str) -> str:
    """The Google class of a pass type: one class per type, shared by all its passes."""
    return _google_id(issuer_id, pass_type_id, field_name="pass_type")


def object_id(issuer_id: str, serial: str) -> str:
    """The Google object of one pass: the serial is opaque and already id-safe."""
    return _google_id(issuer_id, serial, field_name="serial")


# --- the class and the object ----------------------------------------------------------


def _localized(text: Text) -> dict[str, Any]:
    """German by default (the city's language), English as the translation."""
    return {
        "defaultValue": {"language": "de", "value": text.de},
        "translatedValues": [{"language": "en", "value": text.en}],
    }


def _untranslated(value: str) -> dict[str, Any]:
    """Holder data (a name, a plate) reads the same in every language."""
    return {"defaultValue": {"language": "de", "value": value}}


def _date_time(value: datetime) -> dict[str, str]:
    if value.tzinfo is None:
        raise ValueError("naive datetime: use aware UTC datetimes")
    return {"date": value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _base_url(public_base_url: str) -> str:
    parts = urlsplit(public_base_url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"public base URL {public_base_url!r} must be an http(s) URL")
    return public_base_url.rstrip("/")


def _field_path(module_id: str) -> dict[str, Any]:
    return {"firstValue": {"fields": [{"fieldPath": f"object.textModulesData['{module_id}']"}]}}


def _card_row(module_ids: Sequence[str]) -> dict[str, Any]:
    items = [_field_path(m) for m in module_ids]
    if len(items) == 1:
        return {"oneItem": {"item": items[0]}}
    if len(items) == 2:
        return {"twoItems": {"startItem": items[0], "endItem": items[1]}}
    return {"threeItems": {"startItem": items[0], "middleItem": items[1], "endItem": items[2]}}


def generic_class(
    *, issuer_id: str, pass_type: PassType, design: GoogleDesign, public_base_url: str
) -> dict[str, Any]:
    """The class shared by every pass of a type: which fields the card face shows.

    Google's generic class carries no colours or titles (those live on each
    object); it holds the layout, so all passes of a type look alike.
    """
    _check_design(design, pass_type)
    rows = []
    if design.front_fields:
        rows.append(_card_row([_FIELD_MODULE_PREFIX + name for name in design.front_fields]))
    rows.append(_card_row([STATE_MODULE_ID]))
    issuer = pass_type.issuer_name
    return {
        "id": class_id(issuer_id, pass_type.id),
        # A pass identifies one person: it may sit on all their devices, not be shared.
        "multipleDevicesAndHoldersAllowedStatus": "ONE_USER_ALL_DEVICES",
        "classTemplateInfo": {"cardTemplateOverride": {"cardRowTemplateInfos": rows}},
        "linksModuleData": {
            "uris": [
                {
                    "id": "issuer",
                    "uri": _base_url(public_base_url) + "/",
                    "description": issuer.de,
                    "localizedDescription": _localized(issuer),
                }
            ]
        },
    }


def _text_modules(wallet_pass: WalletPass) -> list[dict[str, Any]]:
    modules = [
        {
            "id": _FIELD_MODULE_PREFIX + holder_field.name,
            "header": holder_field.label.de,
            "body": holder_field.value,
            "localizedHeader": _localized(holder_field.label),
        }
        for holder_field in wallet_pass.holder
    ]
    state_text = STATE_TEXTS[wallet_pass.state]
    modules.append(
        {
            "id": STATE_MODULE_ID,
            "header": STATE_LABEL.de,
            "body": state_text.de,
            "localizedHeader": _localized(STATE_LABEL),
            "localizedBody": _localized(state_text),
        }
    )
    return modules


def _barcode(wallet_pass: WalletPass) -> dict[str, Any]:
    return {"type": "QR_CODE", "value": wallet_pass.token, "alternateText": wallet_pass.alt_text}


def _validity(wallet_pass: WalletPass) -> dict[str, Any]:
    return {
        "start": _date_time(wallet_pass.valid_from),
        "end": _date_time(wallet_pass.valid_until),
    }


def generic_object(
    wallet_pass: WalletPass, *, issuer_id: str, design: GoogleDesign, public_base_url: str
) -> dict[str, Any]:
    """The Google object of one pass, its QR code carrying the signed pass token.

    The state's ``reason`` is staff's free text for the audit trail and never
    goes on the pass; the state itself is shown as a text module.
    """
    pass_type = wallet_pass.pass_type
    _check_design(design, pass_type)
    if not wallet_pass.holder:
        raise InputError("a Google pass needs at least one holder field", field="holder")
    by_name = {f.name: f for f in wallet_pass.holder}
    header_name = design.header_field or ("name" if "name" in by_name else None)
    header = by_name.get(header_name) if header_name else None
    header = header or wallet_pass.holder[0]
    issuer = pass_type.issuer_name
    return {
        "id": object_id(issuer_id, wallet_pass.wallet_id),
        "classId": class_id(issuer_id, pass_type.id),
        "genericType": design.generic_type,
        "state": GOOGLE_STATES[wallet_pass.state],
        "cardTitle": _localized(design.card_title or issuer),
        "subheader": _localized(header.label),
        "header": _untranslated(header.value),
        "barcode": _barcode(wallet_pass),
        "validTimeInterval": _validity(wallet_pass),
        "textModulesData": _text_modules(wallet_pass),
        "hexBackgroundColor": design.background_color,
        "logo": {
            "sourceUri": {"uri": f"{_base_url(public_base_url)}/{design.logo}"},
            "contentDescription": _localized(issuer),
        },
    }


def state_patch(wallet_pass: WalletPass) -> dict[str, Any]:
    """The PATCH body that brings a saved Google pass up to date.

    A PATCH replaces whole arrays, so the holder text modules travel along
    with the state module. The QR code and validity travel too: a renewal
    changes them under the same object, and the holder's pass updates in place.
    """
    return {
        "state": GOOGLE_STATES[wallet_pass.state],
        "textModulesData": _text_modules(wallet_pass),
        "barcode": _barcode(wallet_pass),
        "validTimeInterval": _validity(wallet_pass),
    }


# --- the save link ---------------------------------------------------------------------


def save_url(
    account: ServiceAccount,
    *,
    objects: list[dict[str, Any]] | None = None,
    object_ids: list[str] | None = None,
    classes: list[dict[str, Any]] | None = None,
    origins: list[str],
    now: datetime,
) -> str | None:
    """The "Add to Google Wallet" link, or None if it would exceed MAX_SAVE_LINK_LENGTH.

    Give either whole ``objects`` (nothing to insert first) or the ``object_ids``
    of objects already inserted over REST. Whole objects need their ``classes``
    in the link too: Google creates a class it does not have yet from the link,
    and refuses an object whose class does not exist. None is the expected
    answer for whole objects carrying a long token: the caller then inserts the
    class and object and asks again with the id. A link longer than the limit
    is never returned.
    """
    if (objects is None) == (object_ids is None):
        raise ValueError("give exactly one of objects or object_ids")
    if objects is not None:
        class_ids = {c.get("id") for c in classes or []}
        if not classes or not all(isinstance(i, str) for i in class_ids):
            raise ValueError("whole objects need their classes, each with an id")
        if not {o.get("classId") for o in objects} <= class_ids:
            raise ValueError("every object's classId must be among the classes given")
    elif classes is not None:
        raise ValueError("classes go with whole objects; ids name objects inserted with theirs")
    if now.tzinfo is None:
        raise ValueError("naive datetime: use aware UTC datetimes")
    if not origins or not all(_ORIGIN_RE.fullmatch(o) for o in origins):
        raise ValueError("origins must be scheme://host[:port] without a path, at least one")
    if objects is not None:
        if not objects or not all(isinstance(o.get("id"), str) for o in objects):
            raise ValueError("objects must be generic objects, each with an id")
        generic_objects = objects
    else:
        ids = object_ids or []
        if not ids or not all(_GOOGLE_ID_RE.fullmatch(i) for i in ids):
            raise ValueError("object_ids must be Google object ids (issuer id, '.', suffix)")
        generic_objects = [{"id": i} for i in ids]
    claims = {
        "iss": account.email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": int(now.timestamp()),
        "origins": list(origins),
        "payload": (
            {"genericClasses": classes, "genericObjects": generic_objects}
            if classes
            else {"genericObjects": generic_objects}
        ),
    }
    # The claims segment alone bounds the link from below: when it is already
    # too long, skip the RSA signature (a real pass's whole object is ~3,500).
    claims_json = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    if len(SAVE_URL_PREFIX) + math.ceil(len(claims_json) * 4 / 3) > MAX_SAVE_LINK_LENGTH:
        return None
    token = jwt.encode(
        claims, account.private_key, algorithm="RS256", headers={"kid": account.private_key_id}
    )
    url = SAVE_URL_PREFIX + token
    return url if len(url) <= MAX_SAVE_LINK_LENGTH else None
