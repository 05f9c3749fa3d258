"""Checks behind ``wallet doctor`` for Apple Wallet: certificates, designs, built passes.

Apple Wallet refuses a broken pass silently (the "Add" button just does
nothing), so every mistake we have seen is a finding here with a stable code
and a message that says what is wrong and what to do. Checks return findings
and never raise on hostile input: a .pkpass given to the doctor is untrusted.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from asn1crypto import cms  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from PIL import Image, UnidentifiedImageError

from wallet.errors import ConfigError, WalletError
from wallet.formats.pkpass import (
    IMAGE_NAME,
    LOOPBACK_HOSTS,
    MIN_AUTHENTICATION_TOKEN_LENGTH,
    AppleDesign,
    AppleSigner,
    load_apple_design,
    read_pkpass,
    subject_value,
)

__all__ = [
    "EXPIRY_WARNING",
    "Finding",
    "check_apple_design",
    "check_apple_signer",
    "check_pkpass",
]

Severity = Literal["error", "warning"]
EXPIRY_WARNING = timedelta(days=30)
REQUIRED_ICONS = ("icon.png", "icon@2x.png", "icon@3x.png")
# Apple's image sizes in points (@1x): icons exactly, the others at most.
EXACT_SIZES = {"icon": (29, 29)}
MAX_SIZES = {
    "logo": (160, 50),
    "thumbnail": (90, 90),
    "strip": (375, 123),
    "background": (180, 220),
    "footer": (286, 15),
}
_DIGESTS: Mapping[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class Finding:
    """One problem: a stable code, what is wrong and what to do, and how bad it is."""

    code: str
    message: str
    severity: Severity = "error"


# -- certificates ------------------------------------------------------------


def _validity_findings(
    certificate: x509.Certificate, *, what: str, expired_code: str, now: datetime
) -> list[Finding]:
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if now < start:
        return [
            Finding(
                expired_code,
                f"the {what} is not valid before {start:%Y-%m-%d %H:%M} UTC; check the "
                "server clock or wait for the certificate's start",
            )
        ]
    if now > end:
        return [
            Finding(
                expired_code,
                f"the {what} expired on {end:%Y-%m-%d}; Wallet refuses passes signed with it. "
                + (
                    "Download the current WWDR intermediate from "
                    "https://www.apple.com/certificateauthority/"
                    if expired_code == "wwdr-expired"
                    else "Create a new Pass Type ID certificate at developer.apple.com"
                ),
            )
        ]
    if end - now <= EXPIRY_WARNING:
        return [
            Finding(
                "certificate-expiring",
                f"the {what} expires on {end:%Y-%m-%d}, in {(end - now).days} days; renew it now",
                "warning",
            )
        ]
    return []


def _issuer_finding(certificate: x509.Certificate, wwdr: x509.Certificate) -> Finding | None:
    """Does ``wwdr`` name the issuer of the pass certificate and verify its signature?"""
    if certificate.issuer != wwdr.subject:
        return Finding(
            "wwdr-not-issuer",
            f"the pass certificate was issued by {certificate.issuer.rfc4514_string()}, but "
            f"the configured WWDR certificate is {wwdr.subject.rfc4514_string()}; download "
            "the matching WWDR generation (pass certificates: G4) from "
            "https://www.apple.com/certificateauthority/",
        )
    try:
        certificate.verify_directly_issued_by(wwdr)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return Finding(
            "wwdr-not-issuer",
            "the WWDR certificate has the issuer's name but its key did not sign the pass "
            "certificate; use Apple's genuine WWDR certificate",
        )
    return None


def _certificate_findings(
    certificate: x509.Certificate,
    wwdr: x509.Certificate | None,
    *,
    pass_type_id: str | None,
    team_id: str | None,
    now: datetime,
) -> list[Finding]:
    findings: list[Finding] = []
    subject_pass_type = subject_value(certificate, NameOID.USER_ID)
    subject_team = subject_value(certificate, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if pass_type_id is not None and subject_pass_type != pass_type_id:
        findings.append(
            Finding(
                "pass-type-id-mismatch",
                f"the certificate is for pass type {subject_pass_type!r}, but passes are "
                f"built for {pass_type_id!r}; configure the identifier of the certificate "
                "or use the certificate of that pass type",
            )
        )
    if team_id is not None and subject_team != team_id:
        findings.append(
            Finding(
                "team-id-mismatch",
                f"the certificate belongs to team {subject_team!r}, but passes name team "
                f"{team_id!r}; configure the team identifier shown in the certificate",
            )
        )
    if wwdr is not None:
        issuer = _issuer_finding(certificate, wwdr)
        if issuer is not None:
            findings.append(issuer)
        findings += _validity_findings(
            wwdr, what="WWDR intermediate certificate", expired_code="wwdr-expired", now=now
        )
    findings += _validity_findings(
        certificate, what="Pass Type ID certificate", expired_code="certificate-expired", now=now
    )
    return findings


def check_apple_signer(
    signer: AppleSigner, *, pass_type_id: str, team_id: str, now: datetime
) -> list[Finding]:
    """Certificate vs configuration, WWDR vs certificate, and both certificates' dates."""
    return _certificate_findings(
        signer.certificate, signer.wwdr, pass_type_id=pass_type_id, team_id=team_id, now=now
    )


# -- designs -----------------------------------------------------------------


def _image_findings(images: Mapping[str, bytes]) -> list[Finding]:
    findings = [
        Finding(
            "icon-missing",
            f"the design has no {name}; Wallet needs the icon in all three sizes "
            "(29, 58 and 87 pixels square)",
        )
        for name in REQUIRED_ICONS
        if name not in images
    ]
    for name, data in sorted(images.items()):
        match = IMAGE_NAME.fullmatch(name.rsplit("/", 1)[-1])
        if match is None:
            continue
        kind, scale = match.group(1), int((match.group(2) or "@1x")[1])
        try:
            with Image.open(io.BytesIO(data)) as image:
                image_format, size = image.format, image.size
        except (UnidentifiedImageError, OSError, ValueError):
            image_format, size = None, (0, 0)
        if image_format != "PNG":
            findings.append(Finding("image-unreadable", f"{name} is not a readable PNG image"))
            continue
        if kind in EXACT_SIZES:
            wanted = (EXACT_SIZES[kind][0] * scale, EXACT_SIZES[kind][1] * scale)
            if size != wanted:
                findings.append(
                    Finding(
                        "image-size-wrong",
                        f"{name} is {size[0]}x{size[1]} pixels; it must be {wanted[0]}x{wanted[1]}",
                        "warning",
                    )
                )
        else:
            limit = (MAX_SIZES[kind][0] * scale, MAX_SIZES[kind][1] * scale)
            if size[0] > limit[0] or size[1] > limit[1]:
                findings.append(
                    Finding(
                        "image-size-wrong",
                        f"{name} is {size[0]}x{size[1]} pixels; Wallet shows at most "
                        f"{limit[0]}x{limit[1]} and scales it down",
                        "warning",
                    )
                )
    return findings


def check_apple_design(design: Path | AppleDesign) -> list[Finding]:
    """Icons present in every size, images of the sizes Wallet shows, a loadable design."""
    if isinstance(design, AppleDesign):
        return _image_findings({f.name: f.data for f in design.files})
    images = {path.name: path.read_bytes() for path in sorted(design.glob("*.png"))}
    findings = _image_findings(images)
    if "icon.png" in images:  # otherwise loading fails for a reason already reported
        try:
            load_apple_design(design)
        except ConfigError as exc:
            findings.append(Finding("design-invalid", exc.message))
    return findings


# -- built passes ------------------------------------------------------------


def _manifest_findings(files: Mapping[str, bytes]) -> list[Finding]:
    try:
        manifest = json.loads(files["manifest.json"])
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()
    ):
        return [Finding("pkpass-unreadable", "manifest.json is not a JSON object of file hashes")]
    findings: list[Finding] = []
    for name, data in files.items():
        if name in ("manifest.json", "signature"):
            continue
        listed = manifest.get(name)
        if listed is None:
            findings.append(
                Finding(
                    "file-not-in-manifest",
                    f"{name} is in the pass but not in manifest.json; Wallet refuses "
                    "unlisted files: rebuild the pass",
                )
            )
        elif listed.lower() != hashlib.sha1(data, usedforsecurity=False).hexdigest():
            findings.append(
                Finding(
                    "manifest-hash-mismatch",
                    f"{name} does not match its SHA-1 in manifest.json; the file changed "
                    "after signing: rebuild the pass",
                )
            )
    for name in sorted(set(manifest) - set(files)):
        findings.append(
            Finding(
                "manifest-file-missing",
                f"manifest.json lists {name}, which the pass does not contain: rebuild the pass",
            )
        )
    return findings


def _pass_json_findings(document: Mapping[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    url = document.get("webServiceURL")
    token = document.get("authenticationToken")
    token_short = not isinstance(token, str) or len(token) < MIN_AUTHENTICATION_TOKEN_LENGTH
    if (url is not None or token is not None) and token_short:
        findings.append(
            Finding(
                "authentication-token-short",
                "authenticationToken must be a string of at least "
                f"{MIN_AUTHENTICATION_TOKEN_LENGTH} characters; Wallet refuses the pass",
            )
        )
    if url is not None:
        try:
            parts = urlsplit(url) if isinstance(url, str) else None
            scheme, host = (parts.scheme, parts.hostname) if parts else (None, None)
        except ValueError:
            scheme, host = None, None
        if scheme != "https":
            loopback = scheme == "http" and host in LOOPBACK_HOSTS
            findings.append(
                Finding(
                    "web-service-url-not-https",
                    f"webServiceURL {url!r} is not https; Wallet only calls https services "
                    "(http only on a device with the developer setting): serve updates "
                    "over https",
                    "warning" if loopback else "error",
                )
            )
    barcodes = document.get("barcodes")
    candidates = list(barcodes) if isinstance(barcodes, list) else []
    if "barcode" in document:
        candidates.append(document["barcode"])
    for barcode in candidates:
        message = barcode.get("message") if isinstance(barcode, dict) else None
        if not isinstance(message, str):
            findings.append(
                Finding(
                    "barcode-message-not-string",
                    f"a barcode message is {type(message).__name__}, not a string; Wallet "
                    "refuses the pass: put the pass token in as text",
                )
            )
    return findings


def _invalid(message: str) -> Finding:
    return Finding("signature-invalid", f"{message}; rebuild and re-sign the pass")


def _signature_findings(
    signature: bytes,
    manifest: bytes,
    *,
    wwdr: x509.Certificate | None,
    pass_type_id: str | None,
    team_id: str | None,
    now: datetime,
) -> list[Finding]:
    """Verify the detached CMS SignedData by hand, as Wallet does, and the signer's chain."""
    try:
        info = cms.ContentInfo.load(signature)
        if info["content_type"].native != "signed_data":
            return [_invalid("the signature is not a CMS SignedData structure")]
        signed_data = info["content"]
        if signed_data["encap_content_info"]["content"].native is not None:
            return [_invalid("the signature is not detached (it embeds content)")]
        signer_infos = list(signed_data["signer_infos"])
        if len(signer_infos) != 1:
            return [_invalid(f"the signature has {len(signer_infos)} signers instead of one")]
        signer_info = signer_infos[0]
        embedded = [
            choice.chosen for choice in signed_data["certificates"] if choice.name == "certificate"
        ]
        sid = signer_info["sid"]
        if sid.name != "issuer_and_serial_number":
            return [_invalid("the signer is not named by issuer and serial number")]
        signer_der = next(
            (
                cert.dump()
                for cert in embedded
                if cert.issuer == sid.chosen["issuer"]
                and cert.serial_number == sid.chosen["serial_number"].native
            ),
            None,
        )
        if signer_der is None:
            return [_invalid("the signature does not contain the signer's certificate")]
        embedded_der = [cert.dump() for cert in embedded]
        digest_name = signer_info["digest_algorithm"]["algorithm"].native
        signed_attrs = signer_info["signed_attrs"]
        if not signed_attrs:
            return [_invalid("the signature has no signed attributes (no message digest)")]
        attributes = {attr["type"].native: attr["values"] for attr in signed_attrs}
        # asn1crypto parses lazily: read every value here, where a malformed one is caught.
        digest_values = attributes.get("message_digest")
        message_digest = digest_values[0].native if digest_values else None
        content_types = attributes.get("content_type")
        content_type = content_types[0].native if content_types else None
        # The signature covers the DER of the attributes as a SET OF, not as
        # the [0] IMPLICIT field they are stored in: swap the tag byte.
        signed_bytes = b"\x31" + signed_attrs.dump()[1:]
        signature_algorithm = signer_info["signature_algorithm"]["algorithm"].native
        signature_value = signer_info["signature"].native
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        return [_invalid(f"the signature cannot be parsed ({exc})")]

    hash_type = _DIGESTS.get(cast(str, digest_name))
    if hash_type is None:
        return [_invalid(f"the signature uses the digest {digest_name}; Wallet wants SHA-256")]
    if content_type != "data":
        return [_invalid("the signed attributes lack the content type 'data'")]
    expected = hashlib.new(cast(str, digest_name), manifest).digest()
    if message_digest != expected:
        return [_invalid("the signature's message digest does not match manifest.json")]
    try:
        signer_certificate = x509.load_der_x509_certificate(cast(bytes, signer_der))
        public_key = signer_certificate.public_key()
        if isinstance(public_key, rsa.RSAPublicKey) and signature_algorithm in (
            "rsassa_pkcs1v15",
            f"{digest_name}_rsa",
        ):
            public_key.verify(signature_value, signed_bytes, padding.PKCS1v15(), hash_type())
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and signature_algorithm in (
            "ecdsa",
            f"{digest_name}_ecdsa",
        ):
            public_key.verify(signature_value, signed_bytes, ec.ECDSA(hash_type()))
        else:
            return [_invalid(f"the signature algorithm {signature_algorithm} is not supported")]
    except InvalidSignature:
        return [_invalid("the signature does not verify with the signer's certificate")]
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
        return [_invalid(f"the signer's certificate or signature is malformed ({exc})")]

    try:
        return _chain_findings(
            signer_certificate,
            embedded_der,
            wwdr=wwdr,
            pass_type_id=pass_type_id,
            team_id=team_id,
            now=now,
        )
    except (ValueError, x509.InvalidVersion) as exc:  # names, extensions parse lazily
        return [_invalid(f"the signer's certificate is malformed ({exc})")]


def _chain_findings(
    signer_certificate: x509.Certificate,
    embedded_der: list[bytes],
    *,
    wwdr: x509.Certificate | None,
    pass_type_id: str | None,
    team_id: str | None,
    now: datetime,
) -> list[Finding]:
    """The signer's certificate against the WWDR; Wallet needs that WWDR inside the pass."""
    carried = None
    for der in embedded_der:
        try:
            candidate = x509.load_der_x509_certificate(der)
            if wwdr is not None:  # given the genuine WWDR, the pass must carry exactly it
                if candidate == wwdr:
                    carried = candidate
                    break
            elif (
                candidate != signer_certificate
                and _issuer_finding(signer_certificate, candidate) is None
            ):
                carried = candidate
                break
        except (ValueError, x509.InvalidVersion):
            continue
    findings = []
    # Signed under another WWDR altogether: wwdr-not-issuer below says it all.
    foreign = wwdr is not None and _issuer_finding(signer_certificate, wwdr) is not None
    if carried is None and not foreign:
        findings.append(
            Finding(
                "wwdr-not-embedded",
                "the signature does not carry the (undamaged) WWDR certificate that issued "
                "the pass certificate, so Wallet cannot check the chain and refuses the pass; "
                "add Apple's WWDR intermediate when signing",
            )
        )
    issuer = wwdr or carried
    if issuer is None:
        return findings
    return findings + _certificate_findings(
        signer_certificate, issuer, pass_type_id=pass_type_id, team_id=team_id, now=now
    )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def check_pkpass(data: bytes, *, wwdr: x509.Certificate | None, now: datetime) -> list[Finding]:
    """Everything Wallet checks in a .pkpass, and a few things it only dislikes.

    ``wwdr`` is the intermediate the signer must chain to; without it the WWDR
    embedded in the signature is used (which proves consistency, not trust).
    """
    try:
        files = read_pkpass(data)
    except WalletError as exc:
        return [Finding("pkpass-unreadable", f"{exc.message}: rebuild or re-download the pass")]
    missing = [name for name in ("pass.json", "manifest.json", "signature") if name not in files]
    if missing:
        return [
            Finding(
                "pkpass-unreadable",
                f"the pass has no {', '.join(missing)}; it is not a complete pass: rebuild it",
            )
        ]
    findings = _manifest_findings(files)
    try:
        document = json.loads(files["pass.json"])
    except ValueError:
        document = None
    if not isinstance(document, dict):
        findings.append(Finding("pkpass-unreadable", "pass.json is not a JSON object"))
        document = {}
    findings += _pass_json_findings(document)
    findings += _signature_findings(
        files["signature"],
        files["manifest.json"],
        wwdr=wwdr,
        pass_type_id=_text_or_none(document.get("passTypeIdentifier")),
        team_id=_text_or_none(document.get("teamIdentifier")),
        now=now,
    )
    return findings
