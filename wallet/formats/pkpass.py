"""Apple Wallet passes (.pkpass): a signed zip around the pass token.

A pass type's Apple design (``templates/passes/<type>/apple/``, described in
``templates/passes/apple-design.md``) is read once into an :class:`AppleDesign`
with its static files' bytes and SHA-1s precomputed. Building a pass then only
serialises ``pass.json`` and the two ``pass.strings`` files, hashes them and
signs the manifest, which keeps a build around a millisecond or two.

Apple's camelCase vocabulary (``passTypeIdentifier``, ``PKBarcodeFormatQR`` …)
appears only in this module.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from wallet.domain import WalletPass
from wallet.errors import ConfigError, InputError, WalletError

__all__ = [
    "LANGUAGES",
    "MIN_AUTHENTICATION_TOKEN_LENGTH",
    "AppleDesign",
    "AppleSigner",
    "DesignField",
    "DesignFile",
    "build_pkpass",
    "check_web_service_url",
    "load_apple_design",
    "load_apple_signer",
    "parse_strings",
    "read_pkpass",
    "render_strings",
    "subject_value",
]

LANGUAGES = ("de", "en")
# Apple: authenticationToken "must be 16 characters or longer".
MIN_AUTHENTICATION_TOKEN_LENGTH = 16
STYLES = ("generic", "storeCard", "eventTicket", "coupon")  # boardingPass needs transit data
AREAS = ("headerFields", "primaryFields", "secondaryFields", "auxiliaryFields", "backFields")
COLOUR_KEYS = ("backgroundColor", "foregroundColor", "labelColor")
# Built-in fields a design can place with "$name"; "reason" is part of "$state".
BUILT_INS = ("state", "valid_from", "valid_until", "serial")
STATES = ("valid", "suspended", "revoked")
IMAGE_NAME = re.compile(r"(icon|logo|thumbnail|strip|background|footer)(@[23]x)?\.png")
# Keys this module writes into pass.strings itself; a design may use but not define them.
GENERATED_PREFIXES = ("pass.", "field.")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

# read_pkpass limits: a real pass is a few hundred kilobytes.
MAX_PKPASS_BYTES = 16 * 1024 * 1024
MAX_ENTRIES = 200
MAX_ENTRY_BYTES = 8 * 1024 * 1024
MAX_TOTAL_BYTES = 32 * 1024 * 1024
_ENTRY_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,100}(/[A-Za-z0-9._@+-]{1,100})?")

_COLOUR = re.compile(r"rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)")
_STRINGS_TOKEN = re.compile(
    r'(?P<skip>\s+|/\*.*?\*/|//[^\n]*)|"(?P<text>(?:[^"\\]|\\.)*)"|(?P<op>[=;])|(?P<bad>.)',
    re.DOTALL,
)
_STRINGS_ESCAPE = re.compile(r"\\(U[0-9A-Fa-f]{4}|.)", re.DOTALL)
_UNESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "'": "'"}
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_PKPASS_UNREADABLE = "pkpass_unreadable"


# -- signer ------------------------------------------------------------------


def subject_value(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    """The first subject attribute ``oid`` of a certificate, as text, or None."""
    values = certificate.subject.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


@dataclass(frozen=True)
class AppleSigner:
    """What signs a pass: Apple's Pass Type ID certificate, its key and the WWDR intermediate."""

    certificate: x509.Certificate
    key: pkcs7.PKCS7PrivateKeyTypes = field(repr=False)
    wwdr: x509.Certificate

    @property
    def pass_type_id(self) -> str:
        """Apple puts the pass type identifier into the subject's UID."""
        return subject_value(self.certificate, NameOID.USER_ID) or ""

    @property
    def team_id(self) -> str:
        """Apple puts the developer team identifier into the subject's OU."""
        return subject_value(self.certificate, NameOID.ORGANIZATIONAL_UNIT_NAME) or ""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc


def _load_certificate(path: Path, what: str) -> x509.Certificate:
    data = _read(path, what)
    hint = (
        "give a certificate in PEM or DER form (from a .p12 export: "
        "`openssl pkcs12 -in export.p12 -clcerts -nokeys -out pass.pem`)"
    )
    if b"-----BEGIN" in data:
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except (ValueError, x509.InvalidVersion) as exc:
            raise ConfigError(f"the {what} {path} contains no certificate: {hint}") from exc
        if len(certificates) != 1:
            raise ConfigError(
                f"the {what} {path} contains {len(certificates)} certificates; "
                "put the pass certificate and the WWDR certificate into separate files"
            )
        return certificates[0]
    try:
        return x509.load_der_x509_certificate(data)
    except (ValueError, x509.InvalidVersion) as exc:
        raise ConfigError(f"the {what} {path} is not a certificate: {hint}") from exc


def _load_private_key(path: Path, passphrase: bytes | None) -> pkcs7.PKCS7PrivateKeyTypes:
    data = _read(path, "Apple pass signing key")
    pem = b"-----BEGIN" in data
    load = serialization.load_pem_private_key if pem else serialization.load_der_private_key
    try:
        key = load(data, password=None)
        encrypted = False
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        encrypted = True
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            f"the Apple pass signing key {path} is not a private key in PEM or DER form "
            "(from a .p12 export: `openssl pkcs12 -in export.p12 -nocerts -out pass.key.pem`)"
        ) from exc
    if encrypted:
        if passphrase is None:
            raise ConfigError(
                f"the Apple pass signing key {path} is encrypted: configure its passphrase"
            )
        try:
            key = load(data, password=passphrase)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"the Apple pass signing key {path} cannot be decrypted: the configured "
                "passphrase is wrong, or the file is damaged"
            ) from exc
    elif passphrase is not None:
        raise ConfigError(
            f"the Apple pass signing key {path} is not encrypted, but a passphrase is "
            "configured: encrypt the key (`openssl pkcs8 -topk8 -v2 aes-256-cbc`) or "
            "remove the passphrase"
        )
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(
            f"the Apple pass signing key {path} is neither RSA nor EC; Apple issues RSA keys"
        )
    return key


def _public_der(key: Any) -> bytes:
    encoded: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return encoded


def load_apple_signer(
    *, certificate: Path, key: Path, wwdr: Path, passphrase: bytes | None
) -> AppleSigner:
    """Read Apple's Pass Type ID certificate, its private key and the WWDR intermediate.

    The passphrase never appears in an error message or a log line.

    :raises ConfigError: naming the file at fault and what to do about it.
    """
    pass_certificate = _load_certificate(certificate, "Pass Type ID certificate")
    wwdr_certificate = _load_certificate(wwdr, "Apple WWDR intermediate certificate")
    private_key = _load_private_key(key, passphrase)
    if _public_der(pass_certificate.public_key()) != _public_der(private_key.public_key()):
        raise ConfigError(
            f"the key {key} does not belong to the certificate {certificate}: use the key "
            "the certificate signing request was made with (both come out of the same .p12)"
        )
    if wwdr_certificate == pass_certificate:
        raise ConfigError(
            f"{wwdr} is the Pass Type ID certificate itself; give Apple's WWDR intermediate "
            "certificate (G4, https://www.apple.com/certificateauthority/) instead"
        )
    signer = AppleSigner(certificate=pass_certificate, key=private_key, wwdr=wwdr_certificate)
    if not signer.pass_type_id:
        raise ConfigError(
            f"the certificate {certificate} has no UID in its subject, so it is not a Pass "
            "Type ID certificate; create one under Identifiers → Pass Type IDs at "
            "developer.apple.com"
        )
    if not signer.team_id:
        raise ConfigError(
            f"the certificate {certificate} has no team identifier (OU) in its subject; "
            "it is not a Pass Type ID certificate issued by Apple"
        )
    return signer


# -- design ------------------------------------------------------------------


@dataclass(frozen=True)
class DesignFile:
    """A static file of every pass of a design, with its manifest hash precomputed."""

    name: str
    data: bytes = field(repr=False)
    sha1: str


@dataclass(frozen=True)
class DesignField:
    """One field a design places on the pass.

    ``source`` is ``holder`` (a holder field named ``key``), one of the built-ins
    ``state``/``valid_from``/``valid_until``/``serial``, or ``static`` (fixed
    text: ``label`` and ``value`` are pass.strings keys).
    """

    area: str
    source: str
    key: str
    label: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class AppleDesign:
    """A pass type's Apple design, read once; building a pass only adds per-pass data."""

    folder: Path
    style: str
    colours: Mapping[str, str]
    logo_text: str | None
    fields: tuple[DesignField, ...]
    strings: Mapping[str, Mapping[str, str]]
    files: tuple[DesignFile, ...]
    # The design's own pass.strings entries, already encoded, per language.
    strings_prefix: Mapping[str, bytes] = field(repr=False)

    def file(self, name: str) -> DesignFile | None:
        return next((f for f in self.files if f.name == name), None)


def _sha1(data: bytes) -> str:
    # SHA-1 because Apple's manifest format asks for it; integrity rests on the
    # SHA-256 signature over the manifest.
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def _decode_strings(data: bytes, source: str) -> str:
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source} is neither UTF-8 nor UTF-16 with a byte order mark") from exc


def _unescape(text: str, source: str) -> str:
    def replace(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape.startswith("U") and len(escape) == 5:
            code = int(escape[1:], 16)
            if 0xD800 <= code <= 0xDFFF:
                raise ConfigError(f"{source}: \\{escape} is half of a surrogate pair")
            return chr(code)
        if escape in _UNESCAPES:
            return _UNESCAPES[escape]
        raise ConfigError(f"{source}: unknown escape \\{escape}")

    return _STRINGS_ESCAPE.sub(replace, text)


def parse_strings(data: bytes, *, source: str) -> dict[str, str]:
    """Read an Apple ``.strings`` file: ``"key" = "value";`` lines and comments."""
    text = _decode_strings(data, source)
    tokens: list[tuple[str, str]] = []
    for match in _STRINGS_TOKEN.finditer(text):
        if match.group("skip") is not None:
            continue
        if match.group("bad") is not None:
            line = text.count("\n", 0, match.start()) + 1
            raise ConfigError(f'{source}, line {line}: expected "key" = "value";')
        if match.group("text") is not None:
            tokens.append(("text", _unescape(match.group("text"), source)))
        else:
            tokens.append((match.group("op"), ""))
    entries: dict[str, str] = {}
    for i in range(0, len(tokens), 4):
        group = tokens[i : i + 4]
        if [kind for kind, _ in group] != ["text", "=", "text", ";"]:
            raise ConfigError(f'{source}: entry {i // 4 + 1} is not "key" = "value";')
        key, value = group[0][1], group[2][1]
        if key in entries:
            raise ConfigError(f"{source}: the key {key!r} is defined twice")
        entries[key] = value
    return entries


def _escape_strings_text(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif unicodedata.category(char) == "Cc":
            out.append(f"\\U{ord(char):04X}")
        else:
            out.append(char)
    return "".join(out)


def render_strings(entries: Mapping[str, str]) -> str:
    """Apple ``.strings`` lines for ``entries``, in their order."""
    return "".join(
        f'"{_escape_strings_text(k)}" = "{_escape_strings_text(v)}";\n' for k, v in entries.items()
    )


# pass.strings is written as UTF-16 (little-endian, with a byte order mark).
# Apple's PassKit guide points to the standard strings-file format, whose
# documentation ("Resource Programming Guide: String Resources") recommends
# UTF-16, the default encoding of strings files; current iOS also reads UTF-8,
# but UTF-16 with a BOM is what every Wallet version reads. The design's source
# files stay UTF-8 so they diff well in git; they are transcoded on load.
_STRINGS_BOM = b"\xff\xfe"
_STRINGS_ENCODING = "utf-16-le"


def _encode_strings(text: str) -> bytes:
    return text.encode(_STRINGS_ENCODING)


def _required_strings(fields: tuple[DesignField, ...], logo_text: str | None) -> set[str]:
    needed = {f"state.{state}" for state in STATES} | {"state.changed"}
    for design_field in fields:
        if design_field.source in BUILT_INS:
            needed.add(f"label.{design_field.source}")
        for key in (design_field.label, design_field.value):
            if key is not None:
                needed.add(key)
    if logo_text is not None:
        needed.add(logo_text)
    return {key for key in needed if not key.startswith(GENERATED_PREFIXES)}


def _design_field(raw: object, area: str, source: str) -> DesignField:
    if isinstance(raw, str):
        if raw.startswith("$"):
            if raw[1:] not in BUILT_INS:
                raise ConfigError(
                    f"{source}: {area} names {raw}; built-ins are "
                    + ", ".join(f"${name}" for name in BUILT_INS)
                )
            return DesignField(area=area, source=raw[1:], key=raw[1:])
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", raw):
            raise ConfigError(f"{source}: {area} entry {raw!r} is not a holder field name")
        return DesignField(area=area, source="holder", key=raw)
    if isinstance(raw, dict) and set(raw) <= {"key", "label", "value"} and "value" in raw:
        key, label, value = raw.get("key"), raw.get("label"), raw["value"]
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", key):
            raise ConfigError(f'{source}: a static field in {area} needs a "key"')
        if not isinstance(value, str) or not (label is None or isinstance(label, str)):
            raise ConfigError(f"{source}: static field {key}: label and value are strings keys")
        return DesignField(area=area, source="static", key=key, label=label, value=value)
    raise ConfigError(
        f"{source}: {area} entries are holder field names, $built-ins or "
        '{"key", "label", "value"} objects'
    )


_Template = tuple[str, dict[str, str], str | None, tuple[DesignField, ...]]


def _parse_template(raw: object, source: str) -> _Template:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a JSON object")
    styles = [key for key in raw if key in STYLES]
    unknown = set(raw) - {*COLOUR_KEYS, "logoText", *STYLES}
    if unknown:
        raise ConfigError(f"{source}: unknown keys {', '.join(sorted(unknown))}")
    if len(styles) != 1:
        raise ConfigError(f"{source} needs exactly one pass style of {', '.join(STYLES)}")
    colours: dict[str, str] = {}
    for name in COLOUR_KEYS:
        value = raw.get(name)
        if value is None:
            continue
        match = _COLOUR.fullmatch(value) if isinstance(value, str) else None
        if match is None or any(int(part) > 255 for part in match.groups()):
            raise ConfigError(f'{source}: {name} must look like "rgb(0, 84, 140)"')
        colours[name] = "rgb({}, {}, {})".format(*(int(part) for part in match.groups()))
    logo_text = raw.get("logoText")
    if logo_text is not None and not isinstance(logo_text, str):
        raise ConfigError(f"{source}: logoText must be a pass.strings key")
    layout = raw[styles[0]]
    if not isinstance(layout, dict) or not set(layout) <= set(AREAS):
        raise ConfigError(f"{source}: {styles[0]} may only hold {', '.join(AREAS)}")
    fields: list[DesignField] = []
    for area in AREAS:
        entries = layout.get(area, [])
        if not isinstance(entries, list):
            raise ConfigError(f"{source}: {area} must be a list")
        fields.extend(_design_field(entry, area, source) for entry in entries)
    keys = [f.key for f in fields]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ConfigError(f"{source}: field keys must be unique ({', '.join(duplicates)})")
    if sum(f.source == "state" for f in fields) != 1:
        raise ConfigError(f"{source} must show $state once, so holders see a suspension")
    return styles[0], colours, logo_text, tuple(fields)


def load_apple_design(folder: Path) -> AppleDesign:
    """Read ``templates/passes/<type>/apple/`` once: template, images and strings.

    :raises ConfigError: naming the file at fault; a broken design fails at
        start-up, not when the first citizen taps "Add to Apple Wallet".
    """
    template_path = folder / "pass.json"
    try:
        raw = json.loads(_read(template_path, "Apple design template"))
    except ValueError as exc:
        raise ConfigError(f"{template_path} is not valid JSON: {exc}") from exc
    style, colours, logo_text, fields = _parse_template(raw, str(template_path))

    files: list[DesignFile] = []
    strings: dict[str, dict[str, str]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == "pass.json":
            continue
        if path.is_dir() and path.suffix == ".lproj":
            language = path.stem
            if language not in LANGUAGES:
                raise ConfigError(f"{path}: only {', '.join(LANGUAGES)} are supported")
            names = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
            if names != ["pass.strings"]:
                raise ConfigError(f"{path} must contain exactly pass.strings (found {names})")
            source = path / "pass.strings"
            strings[language] = parse_strings(_read(source, "strings file"), source=str(source))
        elif path.is_file() and IMAGE_NAME.fullmatch(path.name):
            data = _read(path, "image")
            if not data.startswith(b"\x89PNG\r\n\x1a\n"):
                raise ConfigError(f"{path} is not a PNG image")
            files.append(DesignFile(name=path.name, data=data, sha1=_sha1(data)))
        else:
            raise ConfigError(
                f"{path} is not part of an Apple design (pass.json, <lang>.lproj/pass.strings, "
                "icon/logo/thumbnail/strip/background/footer[@2x|@3x].png)"
            )
    if not any(f.name == "icon.png" for f in files):
        raise ConfigError(f"{folder} has no icon.png; Apple Wallet refuses passes without one")
    missing_languages = [lang for lang in LANGUAGES if lang not in strings]
    if missing_languages:
        raise ConfigError(f"{folder} needs {', '.join(missing_languages)}.lproj/pass.strings")
    for language, entries in strings.items():
        reserved = sorted(k for k in entries if k.startswith(GENERATED_PREFIXES))
        if reserved:
            raise ConfigError(
                f"{folder}/{language}.lproj/pass.strings defines {', '.join(reserved)}; "
                f"keys starting with {' or '.join(GENERATED_PREFIXES)} are written per pass"
            )
        missing = sorted(_required_strings(fields, logo_text) - set(entries))
        if missing:
            raise ConfigError(f"{folder}/{language}.lproj/pass.strings lacks {', '.join(missing)}")
        for state in STATES:
            if "%" in entries[f"state.{state}"]:
                raise ConfigError(f"{folder}: state.{state} must not contain %")
        if entries["state.changed"].count("%@") != 1:
            raise ConfigError(
                f"{folder}/{language}.lproj/pass.strings: state.changed must contain %@ "
                "once (Wallet puts the new state there)"
            )
    if set(strings["de"]) != set(strings["en"]):
        difference = sorted(set(strings["de"]) ^ set(strings["en"]))
        raise ConfigError(f"{folder}: de and en pass.strings differ in {', '.join(difference)}")
    return AppleDesign(
        folder=folder,
        style=style,
        colours=MappingProxyType(colours),
        logo_text=logo_text,
        fields=fields,
        strings=MappingProxyType({lang: MappingProxyType(strings[lang]) for lang in LANGUAGES}),
        files=tuple(files),
        strings_prefix=MappingProxyType(
            {
                lang: _STRINGS_BOM + _encode_strings(render_strings(strings[lang]))
                for lang in LANGUAGES
            }
        ),
    )


# -- building ----------------------------------------------------------------


def _check_authentication_token(token: str) -> None:
    if len(token) < MIN_AUTHENTICATION_TOKEN_LENGTH:
        raise InputError(
            f"the authentication token must have at least {MIN_AUTHENTICATION_TOKEN_LENGTH} "
            "characters (Apple refuses shorter ones)",
            field="authentication_token",
        )
    # Wallet sends it in an HTTP header: "Authorization: ApplePass <token>".
    if not all("!" <= char <= "~" for char in token):
        raise InputError(
            "the authentication token must be printable ASCII without spaces",
            field="authentication_token",
        )


def check_web_service_url(url: str) -> str:
    """Return the URL Wallet calls for updates, without a trailing slash.

    Wallet talks to the web service only over HTTPS; plain HTTP works on a
    device with the developer setting "Allow HTTP Services", so it is accepted
    for loopback hosts only (local tests). ``wallet doctor`` flags it anyway.

    :raises ConfigError: for anything else.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ConfigError(f"the Apple web service URL {url!r} is not a URL") from exc
    if (
        not host
        or parts.query
        or parts.fragment
        or parts.username is not None
        or parts.password is not None
    ):
        raise ConfigError(
            f"the Apple web service URL {url!r} must be https://host[:port][/path] "
            "without user, query or fragment"
        )
    if parts.scheme != "https" and not (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        raise ConfigError(
            f"the Apple web service URL {url!r} must use https: Wallet does not call "
            "plain http services (http is accepted for localhost only, for tests)"
        )
    return url.rstrip("/")


def _check_signer_current(signer: AppleSigner, now: datetime) -> None:
    renew = {
        "Pass Type ID": "create a new one at developer.apple.com",
        "WWDR": "download the current one from https://www.apple.com/certificateauthority/",
    }
    for certificate, what in ((signer.certificate, "Pass Type ID"), (signer.wwdr, "WWDR")):
        start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        if not start <= now <= end:
            raise ConfigError(
                f"the {what} certificate is valid from {start:%Y-%m-%d} to {end:%Y-%m-%d}, "
                f"not now, so Wallet would refuse the pass: {renew[what]} "
                "(`wallet doctor` checks the setup)"
            )


def _timestamp(moment: datetime) -> str:
    """ISO 8601 with an offset, as Apple's date keys require."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _pass_document(
    wallet_pass: WalletPass,
    *,
    design: AppleDesign,
    signer: AppleSigner,
    web_service_url: str,
    organization_name: str | None,
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """pass.json as a dict, and the per-pass pass.strings entries per language."""
    generated: dict[str, dict[str, str]] = {
        lang: {
            "pass.description": wallet_pass.pass_type.label.get(lang),
            "pass.organization": wallet_pass.pass_type.issuer_name.get(lang),
        }
        for lang in LANGUAGES
    }
    holder = {f.name: f for f in wallet_pass.holder}
    # Staff's reason is for the audit trail and never goes on the pass (nor on the
    # citizen page or the Google object); the state's change message tells the
    # holder what changed, the issuing office why.
    state_key = f"state.{wallet_pass.state}"
    areas: dict[str, list[dict[str, Any]]] = {}
    for spec in design.fields:
        entry: dict[str, Any]
        if spec.source == "holder":
            holder_field = holder.get(spec.key)
            if holder_field is None:
                raise ConfigError(
                    f"the Apple design {design.folder} shows the field {spec.key}, which "
                    f"pass type {wallet_pass.pass_type.id} does not have"
                )
            for lang in LANGUAGES:
                generated[lang][f"field.{spec.key}"] = holder_field.label.get(lang)
            entry = {"key": spec.key, "label": f"field.{spec.key}", "value": holder_field.value}
        elif spec.source == "state":
            entry = {
                "key": spec.key,
                "label": "label.state",
                "value": state_key,
                "changeMessage": "state.changed",
            }
        elif spec.source in ("valid_from", "valid_until"):
            moment = (
                wallet_pass.valid_from if spec.source == "valid_from" else wallet_pass.valid_until
            )
            entry = {
                "key": spec.key,
                "label": f"label.{spec.source}",
                "value": _timestamp(moment),
                "dateStyle": "PKDateStyleMedium",
                "timeStyle": "PKDateStyleNone",
            }
        elif spec.source == "serial":
            entry = {"key": spec.key, "label": "label.serial", "value": wallet_pass.serial}
        else:
            entry = {"key": spec.key, "value": spec.value}
            if spec.label is not None:
                entry["label"] = spec.label
        areas.setdefault(spec.area, []).append(entry)

    document: dict[str, Any] = {
        "formatVersion": 1,
        "passTypeIdentifier": signer.pass_type_id,
        "teamIdentifier": signer.team_id,
        "serialNumber": wallet_pass.wallet_id,
        "organizationName": organization_name or "pass.organization",
        "description": "pass.description",
        **design.colours,
        design.style: areas,
        "barcodes": [
            {
                "format": "PKBarcodeFormatQR",
                "message": wallet_pass.token,
                "messageEncoding": "iso-8859-1",
                "altText": wallet_pass.alt_text,
            }
        ],
        # The pass is personal; the token is checked against the holder's ID.
        "sharingProhibited": True,
        "expirationDate": _timestamp(wallet_pass.valid_until),
        "authenticationToken": wallet_pass.authentication_token,
        "webServiceURL": web_service_url,
    }
    if design.logo_text is not None:
        document["logoText"] = design.logo_text
    # Revoked is final: Wallet greys the pass out. Suspended is not voided,
    # because a suspension can be lifted and Wallet treats a voided pass as
    # used up; the state field says "suspended" (with the reason), the change
    # message tells the holder, and a scan is refused through the status list.
    if wallet_pass.state == "revoked":
        document["voided"] = True
    return document, generated


def _sign_manifest(manifest: bytes, signer: AppleSigner) -> bytes:
    """Detached PKCS#7 over the manifest, WWDR included, signing time in the signed attributes."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(manifest)
        .add_signer(signer.certificate, signer.key, hashes.SHA256())
        .add_certificate(signer.wwdr)
        .sign(
            serialization.Encoding.DER,
            [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
        )
    )


def _zip_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    utc = moment.astimezone(UTC)
    if utc.year < 1980:  # the zip format starts in 1980
        return (1980, 1, 1, 0, 0, 0)
    return (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)


def _zip(entries: list[tuple[str, bytes]], moment: datetime) -> bytes:
    """A zip whose bytes depend only on the entries and ``moment`` (no clock, no umask)."""
    date_time = _zip_time(moment)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.create_system = 3  # Unix, whatever the build host
            info.external_attr = 0o100644 << 16
            # PNGs are compressed already; deflating them again costs time for nothing.
            info.compress_type = (
                zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
            )
            archive.writestr(info, data)
    return buffer.getvalue()


def build_pkpass(
    wallet_pass: WalletPass,
    *,
    design: AppleDesign,
    signer: AppleSigner,
    web_service_url: str,
    organization_name: str | None = None,
    now: datetime,
) -> bytes:
    """Return the signed .pkpass of a pass: its QR code carries the pass token.

    Entries are timestamped with the pass's ``updated_at``, so the same pass
    builds to the same files; only the signature's signing time (set by the
    signing library from the clock) differs between two builds.

    :raises InputError: for an authentication token Apple would refuse.
    :raises ConfigError: for a web service URL, a signer or a design that
        cannot make a pass Wallet accepts at ``now``.
    """
    _check_authentication_token(wallet_pass.authentication_token)
    url = check_web_service_url(web_service_url)
    _check_signer_current(signer, now)
    try:
        wallet_pass.token.encode("iso-8859-1")
    except UnicodeEncodeError as exc:
        raise InputError("the pass token is not ISO-8859-1 text", field="token") from exc
    document, generated = _pass_document(
        wallet_pass,
        design=design,
        signer=signer,
        web_service_url=url,
        organization_name=organization_name,
    )
    pass_json = json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")
    entries: list[tuple[str, bytes]] = [("pass.json", pass_json)]
    manifest: dict[str, str] = {"pass.json": _sha1(pass_json)}
    for design_file in design.files:
        entries.append((design_file.name, design_file.data))
        manifest[design_file.name] = design_file.sha1
    for lang in LANGUAGES:
        name = f"{lang}.lproj/pass.strings"
        data = design.strings_prefix[lang] + _encode_strings(render_strings(generated[lang]))
        entries.append((name, data))
        manifest[name] = _sha1(data)
    manifest_json = json.dumps(manifest, sort_keys=True, indent=2).encode("utf-8")
    entries.append(("manifest.json", manifest_json))
    entries.append(("signature", _sign_manifest(manifest_json, signer)))
    return _zip(entries, wallet_pass.updated_at)


# -- reading -----------------------------------------------------------------


def _unreadable(message: str) -> WalletError:
    return WalletError(message, code=_PKPASS_UNREADABLE)


def _check_entry_name(name: str) -> None:
    if not _ENTRY_NAME.fullmatch(name) or any(part in (".", "..") for part in name.split("/")):
        raise _unreadable(f"the pass contains a file with a name a pass never has: {name!r}")


def read_pkpass(data: bytes) -> dict[str, bytes]:
    """Every file of a .pkpass by name, refusing anything a genuine pass never is.

    Limits sizes (against zip bombs), refuses absolute or ``..`` names,
    duplicate names (also differing only in case, as on Apple's file systems),
    encryption and exotic compression.

    :raises WalletError: with code ``pkpass_unreadable`` saying why.
    """
    if len(data) > MAX_PKPASS_BYTES:
        raise _unreadable(f"the pass is larger than {MAX_PKPASS_BYTES // (1024 * 1024)} MiB")
    files: dict[str, bytes] = {}
    seen: set[str] = set()
    total = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_ENTRIES:
                raise _unreadable(f"the pass has more than {MAX_ENTRIES} files")
            for info in infos:
                if info.is_dir():
                    _check_entry_name(info.filename.rstrip("/"))
                    continue
                _check_entry_name(info.filename)
                folded = info.filename.casefold()
                if folded in seen:
                    raise _unreadable(f"the pass contains {info.filename} twice")
                seen.add(folded)
                if info.flag_bits & 0x1:
                    raise _unreadable(f"{info.filename} is encrypted")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise _unreadable(f"{info.filename} uses an unsupported compression")
                if info.file_size > MAX_ENTRY_BYTES:
                    raise _unreadable(f"{info.filename} is larger than allowed")
                with archive.open(info) as handle:
                    content = handle.read(MAX_ENTRY_BYTES + 1)
                total += len(content)
                if len(content) > MAX_ENTRY_BYTES or total > MAX_TOTAL_BYTES:
                    raise _unreadable(f"{info.filename} unpacks to more than allowed")
                files[info.filename] = content
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as exc:
        raise _unreadable(f"the pass is not a readable zip archive: {exc}") from exc
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        raise _unreadable(f"the pass cannot be unpacked: {exc}") from exc
    return files
