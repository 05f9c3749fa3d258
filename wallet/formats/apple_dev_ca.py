"""A local certificate chain shaped like Apple's, for development and tests.

Apple signs Pass Type ID certificates with its WWDR intermediate (G4), which
Apple Root CA issued. Real devices only trust Apple's root, so passes signed
with this chain never install on an iPhone; they exercise every other part
of building, signing and checking a pass without an Apple developer account:

    Wallet Dev Root CA
      └─ Wallet Dev Worldwide Developer Relations Certification Authority (OU G4)
           └─ Pass Type ID: <pass type id>  (UID = pass type id, OU = team id)

All keys are RSA 2048, like Apple's root, WWDR G4 and the Pass Type ID
certificates Apple issues for a CSR made by Keychain Access. The leaf carries
the extensions of a real pass certificate: key usage digitalSignature,
extended key usage TLS client (it also authenticates to APNs) plus Apple's
Pass Type ID signing purpose, and Apple's marker extension holding the pass
type identifier, which iOS's pass signing policy looks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wallet.errors import ConfigError
from wallet.files import write_atomically

__all__ = [
    "PASS_TYPE_ID_EXTENSION",
    "PASS_TYPE_ID_SIGNING",
    "DevChain",
    "IssuedChain",
    "create_dev_chain",
    "issue_dev_chain",
    "issue_pass_certificate",
    "private_key_pem",
    "write_private_key",
]

RSA_KEY_BITS = 2048
ORGANIZATION = "Wallet Dev"
# Apple's extended key usage "Pass Type ID signing" and the leaf marker extension.
PASS_TYPE_ID_SIGNING = x509.ObjectIdentifier("1.2.840.113635.100.4.14")
PASS_TYPE_ID_EXTENSION = x509.ObjectIdentifier("1.2.840.113635.100.6.1.16")
# A little slack, so a device whose clock runs a few hours slow accepts a fresh chain.
BACKDATE = timedelta(days=1)
# The authorities outlive the pass certificate, as Apple's do (WWDR G4:
# 10 years, a Pass Type ID certificate: about 13 months).
AUTHORITY_LIFETIME_FACTOR = 10


@dataclass(frozen=True)
class DevChain:
    """Where :func:`create_dev_chain` wrote the chain."""

    root: Path
    wwdr: Path
    certificate: Path
    key: Path


@dataclass(frozen=True)
class IssuedChain:
    """The chain in memory (tests build variations of it without touching disk)."""

    root: x509.Certificate
    root_key: rsa.RSAPrivateKey
    wwdr: x509.Certificate
    wwdr_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey


def _der_utf8_string(text: str) -> bytes:
    """DER of an ASN.1 UTF8String, the content of Apple's Pass Type ID marker."""
    data = text.encode("utf-8")
    if len(data) < 0x80:
        length = bytes([len(data)])
    else:
        size = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(size)]) + size
    return b"\x0c" + length + data


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)


def _authority(
    *,
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: rsa.RSAPrivateKey,
    not_before: datetime,
    not_after: datetime,
    path_length: int | None,
) -> x509.Certificate:
    issuer_ski = (
        issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        if issuer is not None
        else x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def issue_pass_certificate(
    *,
    pass_type_id: str,
    team_id: str,
    key: rsa.RSAPrivateKey,
    wwdr: x509.Certificate,
    wwdr_key: rsa.RSAPrivateKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """A leaf like Apple's Pass Type ID certificate, issued by ``wwdr``."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.USER_ID, pass_type_id),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Pass Type ID: {pass_type_id}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, team_id),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        ]
    )
    wwdr_ski = wwdr.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(wwdr.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, PASS_TYPE_ID_SIGNING]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(wwdr_ski),
            critical=False,
        )
        .add_extension(
            x509.UnrecognizedExtension(PASS_TYPE_ID_EXTENSION, _der_utf8_string(pass_type_id)),
            critical=False,
        )
        .sign(wwdr_key, hashes.SHA256())
    )


def issue_dev_chain(
    *, team_id: str, pass_type_id: str, now: datetime, valid_days: int = 365
) -> IssuedChain:
    """Root, WWDR-like intermediate and Pass Type ID leaf, in memory."""
    if not pass_type_id.startswith("pass.") or not team_id:
        raise ConfigError(
            "a pass type identifier starts with 'pass.' (e.g. pass.de.example.library) "
            "and a team identifier is not empty"
        )
    if valid_days < 1:
        raise ConfigError("the development certificate must be valid for at least one day")
    not_before = now - BACKDATE
    leaf_end = now + timedelta(days=valid_days)
    authority_end = now + timedelta(days=valid_days * AUTHORITY_LIFETIME_FACTOR)
    root_key, wwdr_key, key = _new_key(), _new_key(), _new_key()
    root = _authority(
        subject=x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "Wallet Dev Root CA"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Wallet Dev Certification"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            ]
        ),
        key=root_key,
        issuer=None,
        issuer_key=root_key,
        not_before=not_before,
        not_after=authority_end,
        path_length=None,
    )
    wwdr = _authority(
        subject=x509.Name(
            [
                x509.NameAttribute(
                    NameOID.COMMON_NAME,
                    "Wallet Dev Worldwide Developer Relations Certification Authority",
                ),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "G4"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            ]
        ),
        key=wwdr_key,
        issuer=root,
        issuer_key=root_key,
        not_before=not_before,
        not_after=authority_end,
        path_length=0,
    )
    certificate = issue_pass_certificate(
        pass_type_id=pass_type_id,
        team_id=team_id,
        key=key,
        wwdr=wwdr,
        wwdr_key=wwdr_key,
        not_before=not_before,
        not_after=leaf_end,
    )
    return IssuedChain(
        root=root,
        root_key=root_key,
        wwdr=wwdr,
        wwdr_key=wwdr_key,
        certificate=certificate,
        key=key,
    )


def private_key_pem(key: rsa.RSAPrivateKey, *, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available cipher when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase is not None
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def write_private_key(path: Path, key: rsa.RSAPrivateKey, *, passphrase: bytes | None) -> None:
    """Write a private key readable only by its owner (mode 0600), encrypted if asked."""
    if passphrase is not None and not passphrase:
        raise ConfigError("an empty passphrase does not protect a key")
    write_atomically(path, private_key_pem(key, passphrase=passphrase), mode=0o600)


def create_dev_chain(
    folder: Path,
    *,
    team_id: str,
    pass_type_id: str,
    now: datetime,
    valid_days: int = 365,
    passphrase: bytes | None = None,
) -> DevChain:
    """Write root.pem, wwdr.pem, pass.pem and pass.key.pem (0600) into ``folder``.

    Load the result with :func:`wallet.formats.pkpass.load_apple_signer`.
    An existing pass.key.pem is never overwritten: it may be a real key.

    :raises ConfigError: if the folder already holds a chain.
    """
    chain = DevChain(
        root=folder / "root.pem",
        wwdr=folder / "wwdr.pem",
        certificate=folder / "pass.pem",
        key=folder / "pass.key.pem",
    )
    existing = [p for p in (chain.root, chain.wwdr, chain.certificate, chain.key) if p.exists()]
    if existing:
        raise ConfigError(
            f"{existing[0]} exists already; remove the old development chain first "
            "(a pass key is never overwritten)"
        )
    issued = issue_dev_chain(
        team_id=team_id, pass_type_id=pass_type_id, now=now, valid_days=valid_days
    )
    pem = serialization.Encoding.PEM
    write_private_key(chain.key, issued.key, passphrase=passphrase)
    write_atomically(chain.certificate, issued.certificate.public_bytes(pem), mode=0o644)
    write_atomically(chain.wwdr, issued.wwdr.public_bytes(pem), mode=0o644)
    write_atomically(chain.root, issued.root.public_bytes(pem), mode=0o644)
    return chain
