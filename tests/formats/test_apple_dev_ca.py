"""The development chain is shaped like Apple's: root → WWDR (G4) → Pass Type ID."""

from __future__ import annotations

import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.factories import NOW
from wallet.errors import ConfigError
from wallet.formats.apple_dev_ca import (
    PASS_TYPE_ID_EXTENSION,
    PASS_TYPE_ID_SIGNING,
    DevChain,
    create_dev_chain,
)
from wallet.formats.pkpass import load_apple_signer

OPENSSL = Path("/usr/bin/openssl")
PASS_TYPE_ID = "pass.de.musterstadt.library"
TEAM_ID = "MUSTER1234"


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> DevChain:
    return create_dev_chain(
        tmp_path_factory.mktemp("chain"),
        team_id=TEAM_ID,
        pass_type_id=PASS_TYPE_ID,
        now=NOW,
        valid_days=90,
    )


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_files_are_written_with_the_key_private(chain: DevChain) -> None:
    assert {p.name for p in (chain.root, chain.wwdr, chain.certificate, chain.key)} == {
        "root.pem",
        "wwdr.pem",
        "pass.pem",
        "pass.key.pem",
    }
    assert stat.S_IMODE(chain.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(chain.certificate.stat().st_mode) == 0o644
    assert b"BEGIN PRIVATE KEY" in chain.key.read_bytes()


def test_each_certificate_is_issued_by_the_one_above(chain: DevChain) -> None:
    root, wwdr, leaf = (certificate(p) for p in (chain.root, chain.wwdr, chain.certificate))
    root.verify_directly_issued_by(root)
    wwdr.verify_directly_issued_by(root)
    leaf.verify_directly_issued_by(wwdr)
    with pytest.raises(ValueError):
        leaf.verify_directly_issued_by(root)


def test_names_look_like_apples(chain: DevChain) -> None:
    root, wwdr, leaf = (certificate(p) for p in (chain.root, chain.wwdr, chain.certificate))

    def attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> object:
        return cert.subject.get_attributes_for_oid(oid)[0].value

    assert attribute(root, NameOID.COMMON_NAME) == "Wallet Dev Root CA"
    assert attribute(wwdr, NameOID.COMMON_NAME) == (
        "Wallet Dev Worldwide Developer Relations Certification Authority"
    )
    assert attribute(wwdr, NameOID.ORGANIZATIONAL_UNIT_NAME) == "G4"
    assert attribute(leaf, NameOID.USER_ID) == PASS_TYPE_ID
    assert attribute(leaf, NameOID.COMMON_NAME) == f"Pass Type ID: {PASS_TYPE_ID}"
    assert attribute(leaf, NameOID.ORGANIZATIONAL_UNIT_NAME) == TEAM_ID
    assert attribute(leaf, NameOID.COUNTRY_NAME) == "DE"
    assert attribute(leaf, NameOID.ORGANIZATION_NAME)


def test_keys_are_rsa_2048(chain: DevChain) -> None:
    for path in (chain.root, chain.wwdr, chain.certificate):
        key = certificate(path).public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    private = serialization.load_pem_private_key(chain.key.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048


def test_leaf_has_the_extensions_of_a_pass_certificate(chain: DevChain) -> None:
    leaf, wwdr = certificate(chain.certificate), certificate(chain.wwdr)
    extensions = leaf.extensions
    basic = extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    purposes = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(purposes) == {ExtendedKeyUsageOID.CLIENT_AUTH, PASS_TYPE_ID_SIGNING}
    marker = extensions.get_extension_for_oid(PASS_TYPE_ID_EXTENSION).value
    assert isinstance(marker, x509.UnrecognizedExtension)
    assert core.UTF8String.load(marker.value).native == PASS_TYPE_ID
    authority = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    wwdr_subject_key = wwdr.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert authority.key_identifier == wwdr_subject_key.digest
    own = extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert own == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())


@pytest.mark.parametrize("name", ["root", "wwdr"])
def test_authorities_are_certificate_authorities(name: str, chain: DevChain) -> None:
    cert = certificate(getattr(chain, name))
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is True
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)


def test_validity_leaf_for_valid_days_authorities_longer(chain: DevChain) -> None:
    leaf, wwdr = certificate(chain.certificate), certificate(chain.wwdr)
    assert leaf.not_valid_before_utc <= NOW
    assert leaf.not_valid_after_utc == (NOW + timedelta(days=90)).replace(microsecond=0)
    assert wwdr.not_valid_after_utc > leaf.not_valid_after_utc
    assert certificate(chain.root).not_valid_after_utc >= wwdr.not_valid_after_utc


@pytest.mark.skipif(not OPENSSL.exists(), reason="needs /usr/bin/openssl")
def test_openssl_verifies_the_chain(chain: DevChain) -> None:
    done = subprocess.run(
        [
            str(OPENSSL), "verify", "-CAfile", str(chain.root), "-untrusted", str(chain.wwdr),
            "-attime", str(int(NOW.timestamp())), str(chain.certificate),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(": OK")


def test_the_chain_loads_as_a_signer(chain: DevChain) -> None:
    signer = load_apple_signer(
        certificate=chain.certificate, key=chain.key, wwdr=chain.wwdr, passphrase=None
    )
    assert (signer.pass_type_id, signer.team_id) == (PASS_TYPE_ID, TEAM_ID)


def test_key_is_encrypted_when_a_passphrase_is_given(tmp_path: Path) -> None:
    passphrase = b"a long development passphrase"
    chain = create_dev_chain(
        tmp_path, team_id=TEAM_ID, pass_type_id=PASS_TYPE_ID, now=NOW, passphrase=passphrase
    )
    pem = chain.key.read_bytes()
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in pem
    assert stat.S_IMODE(chain.key.stat().st_mode) == 0o600
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem, password=None)
    key = serialization.load_pem_private_key(pem, password=passphrase)
    public = certificate(chain.certificate).public_key()
    assert isinstance(key, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey)
    assert key.public_key().public_numbers() == public.public_numbers()


def test_an_existing_chain_is_never_overwritten(tmp_path: Path) -> None:
    chain = create_dev_chain(tmp_path, team_id=TEAM_ID, pass_type_id=PASS_TYPE_ID, now=NOW)
    key_before = chain.key.read_bytes()
    with pytest.raises(ConfigError, match="exists already"):
        create_dev_chain(tmp_path, team_id=TEAM_ID, pass_type_id=PASS_TYPE_ID, now=NOW)
    assert chain.key.read_bytes() == key_before


@pytest.mark.parametrize(
    ("team_id", "pass_type_id", "valid_days"),
    [("", PASS_TYPE_ID, 365), (TEAM_ID, "de.musterstadt.library", 365), (TEAM_ID, PASS_TYPE_ID, 0)],
)
def test_unusable_parameters_are_refused(
    tmp_path: Path, team_id: str, pass_type_id: str, valid_days: int
) -> None:
    with pytest.raises(ConfigError):
        create_dev_chain(
            tmp_path, team_id=team_id, pass_type_id=pass_type_id, now=NOW, valid_days=valid_days
        )
    assert not any(tmp_path.iterdir())
