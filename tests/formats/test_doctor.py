"""`wallet doctor` for Apple Wallet: one test per mistake, each must produce its code."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from PIL import Image

from tests.factories import NOW, City
from tests.formats.test_pkpass import (
    DESIGNS,
    PASS_TYPE_ID,
    TEAM_ID,
    build,
    make_pass,
    zip_of,
)
from wallet.formats.apple_dev_ca import (
    DevChain,
    create_dev_chain,
    issue_dev_chain,
    issue_pass_certificate,
)
from wallet.formats.doctor import (
    Finding,
    check_apple_design,
    check_apple_signer,
    check_pkpass,
)
from wallet.formats.pkpass import (
    AppleDesign,
    AppleSigner,
    load_apple_design,
    load_apple_signer,
    read_pkpass,
)

LEAF_DAYS = 365
AUTHORITY_DAYS = LEAF_DAYS * 10


@pytest.fixture(scope="module")
def other_signer(tmp_path_factory: pytest.TempPathFactory) -> AppleSigner:
    """A second, unrelated chain: same names, different keys."""
    other = create_dev_chain(
        tmp_path_factory.mktemp("other"), team_id=TEAM_ID, pass_type_id=PASS_TYPE_ID, now=NOW
    )
    return load_apple_signer(
        certificate=other.certificate, key=other.key, wwdr=other.wwdr, passphrase=None
    )


@pytest.fixture(scope="module")
def pkpass(issuer: City, designs: dict[str, AppleDesign], signer: AppleSigner) -> bytes:
    return build(make_pass(issuer, "parking"), designs, signer)


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def only(findings: list[Finding], code: str) -> Finding:
    """The findings are exactly one, with ``code``; returned for further checks."""
    assert codes(findings) == {code}, findings
    assert len(findings) == 1, findings
    return findings[0]


def sign(manifest: bytes, signer: AppleSigner) -> bytes:
    """An independent signer, so re-signed test passes do not depend on the code under test."""
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


def repack(
    files: dict[str, bytes],
    *,
    signer: AppleSigner | None,
    update_manifest: bool = True,
) -> bytes:
    """Zip ``files``; with a fresh manifest unless told not to, re-signed if a signer is given."""
    files = dict(files)
    if update_manifest:
        manifest = {
            name: hashlib.sha1(data).hexdigest()
            for name, data in files.items()
            if name not in ("manifest.json", "signature")
        }
        files["manifest.json"] = json.dumps(manifest, sort_keys=True).encode()
    if signer is not None:
        files["signature"] = sign(files["manifest.json"], signer)
    return zip_of(list(files.items()))


def with_pass_json(data: bytes, signer: AppleSigner, **changes: Any) -> bytes:
    """The pass with pass.json changed, correctly re-hashed and re-signed."""
    files = read_pkpass(data)
    document = json.loads(files["pass.json"])
    document.update(changes)
    files["pass.json"] = json.dumps(document).encode()
    return repack(files, signer=signer)


# -- clean -------------------------------------------------------------------


def test_a_clean_signer_has_no_findings(signer: AppleSigner) -> None:
    assert check_apple_signer(signer, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, now=NOW) == []


@pytest.mark.parametrize("type_id", ["library", "parking"])
def test_the_shipped_designs_have_no_findings(
    type_id: str, designs: dict[str, AppleDesign]
) -> None:
    assert check_apple_design(DESIGNS / type_id / "apple") == []
    assert check_apple_design(designs[type_id]) == []


@pytest.mark.parametrize("wwdr", ["given", "embedded"])
def test_a_clean_pass_has_no_findings(wwdr: str, pkpass: bytes, signer: AppleSigner) -> None:
    assert check_pkpass(pkpass, wwdr=signer.wwdr if wwdr == "given" else None, now=NOW) == []


def test_a_pass_repacked_by_an_independent_signer_is_clean(
    pkpass: bytes, signer: AppleSigner
) -> None:
    # Guards the helpers below: repacking alone introduces no finding.
    assert check_pkpass(repack(read_pkpass(pkpass), signer=signer), wwdr=signer.wwdr, now=NOW) == []


# -- certificates ------------------------------------------------------------


def test_pass_type_id_mismatch(signer: AppleSigner) -> None:
    found = only(
        check_apple_signer(signer, pass_type_id="pass.de.other", team_id=TEAM_ID, now=NOW),
        "pass-type-id-mismatch",
    )
    assert PASS_TYPE_ID in found.message and "pass.de.other" in found.message


def test_team_id_mismatch(signer: AppleSigner) -> None:
    found = only(
        check_apple_signer(signer, pass_type_id=PASS_TYPE_ID, team_id="OTHER12345", now=NOW),
        "team-id-mismatch",
    )
    assert TEAM_ID in found.message


def test_wwdr_with_the_right_name_but_another_key_is_not_the_issuer(
    signer: AppleSigner, other_signer: AppleSigner
) -> None:
    assert other_signer.wwdr.subject == signer.certificate.issuer
    mixed = AppleSigner(certificate=signer.certificate, key=signer.key, wwdr=other_signer.wwdr)
    found = only(
        check_apple_signer(mixed, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, now=NOW),
        "wwdr-not-issuer",
    )
    assert "did not sign" in found.message


def test_wwdr_with_another_name_is_not_the_issuer(signer: AppleSigner, chain: DevChain) -> None:
    root = load_apple_signer(
        certificate=chain.certificate, key=chain.key, wwdr=chain.root, passphrase=None
    )
    found = only(
        check_apple_signer(root, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, now=NOW),
        "wwdr-not-issuer",
    )
    assert "Wallet Dev Root CA" in found.message


def test_expired_pass_certificate(signer: AppleSigner) -> None:
    later = NOW + timedelta(days=LEAF_DAYS + 1)
    found = only(
        check_apple_signer(signer, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, now=later),
        "certificate-expired",
    )
    assert "expired" in found.message and found.severity == "error"


def test_pass_certificate_not_yet_valid(signer: AppleSigner) -> None:
    earlier = NOW - timedelta(days=2)
    findings = check_apple_signer(signer, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, now=earlier)
    found = next(f for f in findings if f.code == "certificate-expired")
    assert "not valid before" in found.message


def test_expired_wwdr(signer: AppleSigner) -> None:
    later = NOW + timedelta(days=AUTHORITY_DAYS + 1)
    findings = check_apple_signer(signer, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, now=later)
    assert "wwdr-expired" in codes(findings)
    assert "WWDR" in next(f for f in findings if f.code == "wwdr-expired").message


def test_expiring_pass_certificate_warns(signer: AppleSigner) -> None:
    soon = NOW + timedelta(days=LEAF_DAYS - 10)
    found = only(
        check_apple_signer(signer, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, now=soon),
        "certificate-expiring",
    )
    assert found.severity == "warning" and "Pass Type ID" in found.message


def test_expiring_wwdr_warns() -> None:
    issued = issue_dev_chain(team_id=TEAM_ID, pass_type_id=PASS_TYPE_ID, now=NOW, valid_days=30)
    wwdr_end = issued.wwdr.not_valid_after_utc
    # A pass certificate that outlives its WWDR, so only the WWDR is close to its end.
    leaf = issue_pass_certificate(
        pass_type_id=PASS_TYPE_ID,
        team_id=TEAM_ID,
        key=issued.key,
        wwdr=issued.wwdr,
        wwdr_key=issued.wwdr_key,
        not_before=NOW,
        not_after=wwdr_end + timedelta(days=400),
    )
    signer = AppleSigner(certificate=leaf, key=issued.key, wwdr=issued.wwdr)
    soon = wwdr_end - timedelta(days=5)
    found = only(
        check_apple_signer(signer, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, now=soon),
        "certificate-expiring",
    )
    assert found.severity == "warning" and "WWDR" in found.message


# -- designs -----------------------------------------------------------------


def copy_design(tmp_path: Path) -> Path:
    folder = tmp_path / "apple"
    shutil.copytree(DESIGNS / "library" / "apple", folder)
    return folder


@pytest.mark.parametrize("icon", ["icon.png", "icon@2x.png", "icon@3x.png"])
def test_icon_missing(tmp_path: Path, icon: str) -> None:
    folder = copy_design(tmp_path)
    (folder / icon).unlink()
    found = only(check_apple_design(folder), "icon-missing")
    assert icon in found.message


def test_icon_missing_from_a_loaded_design(tmp_path: Path) -> None:
    folder = copy_design(tmp_path)
    (folder / "icon@3x.png").unlink()
    only(check_apple_design(load_apple_design(folder)), "icon-missing")


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (0, 92, 84)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "size"),
    [("icon@3x.png", (80, 80)), ("icon.png", (30, 29)), ("logo@2x.png", (400, 100))],
)
def test_image_of_the_wrong_size_warns(tmp_path: Path, name: str, size: tuple[int, int]) -> None:
    folder = copy_design(tmp_path)
    (folder / name).write_bytes(png(size))
    found = only(check_apple_design(folder), "image-size-wrong")
    assert found.severity == "warning" and name in found.message


def test_a_broken_design_is_reported_not_raised(tmp_path: Path) -> None:
    folder = copy_design(tmp_path)
    (folder / "pass.json").write_text("{not json")
    found = only(check_apple_design(folder), "design-invalid")
    assert "pass.json" in found.message


# -- built passes ------------------------------------------------------------


@pytest.mark.parametrize("token", ["short", ""])
def test_authentication_token_short(token: str, pkpass: bytes, signer: AppleSigner) -> None:
    broken = with_pass_json(pkpass, signer, authenticationToken=token)
    only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "authentication-token-short")


def test_web_service_url_not_https(pkpass: bytes, signer: AppleSigner) -> None:
    broken = with_pass_json(pkpass, signer, webServiceURL="http://pass.example.de/apple")
    found = only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "web-service-url-not-https")
    assert found.severity == "error"


def test_loopback_http_web_service_url_is_only_a_warning(
    pkpass: bytes, signer: AppleSigner
) -> None:
    local = with_pass_json(pkpass, signer, webServiceURL="http://127.0.0.1:8000/apple")
    found = only(check_pkpass(local, wwdr=signer.wwdr, now=NOW), "web-service-url-not-https")
    assert found.severity == "warning"


@pytest.mark.parametrize("message", [12345, None, ["token"]])
def test_barcode_message_not_string(message: object, pkpass: bytes, signer: AppleSigner) -> None:
    document = json.loads(read_pkpass(pkpass)["pass.json"])
    barcodes = [{**document["barcodes"][0], "message": message}]
    broken = with_pass_json(pkpass, signer, barcodes=barcodes)
    only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "barcode-message-not-string")


def test_file_not_in_manifest(pkpass: bytes, signer: AppleSigner) -> None:
    files = read_pkpass(pkpass)
    files["strip.png"] = png((375, 123))
    broken = repack(files, signer=None, update_manifest=False)
    found = only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "file-not-in-manifest")
    assert "strip.png" in found.message


def test_manifest_file_missing(pkpass: bytes, signer: AppleSigner) -> None:
    files = read_pkpass(pkpass)
    del files["logo@3x.png"]
    broken = repack(files, signer=None, update_manifest=False)
    found = only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "manifest-file-missing")
    assert "logo@3x.png" in found.message


def test_manifest_hash_mismatch(pkpass: bytes, signer: AppleSigner) -> None:
    files = read_pkpass(pkpass)
    document = json.loads(files["pass.json"])
    files["pass.json"] = json.dumps({**document, "voided": True}).encode()
    broken = repack(files, signer=None, update_manifest=False)
    found = only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "manifest-hash-mismatch")
    assert "pass.json" in found.message


def test_signature_invalid_when_the_manifest_changed_after_signing(
    pkpass: bytes, signer: AppleSigner
) -> None:
    files = read_pkpass(pkpass)
    document = json.loads(files["pass.json"])
    files["pass.json"] = json.dumps({**document, "voided": True}).encode()
    broken = repack(files, signer=None, update_manifest=True)  # honest manifest, old signature
    found = only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "signature-invalid")
    assert "message digest" in found.message


def test_signature_invalid_when_the_signature_value_is_altered(
    pkpass: bytes, signer: AppleSigner
) -> None:
    files = read_pkpass(pkpass)
    signature = bytearray(files["signature"])
    signature[-10] ^= 0x01  # inside the RSA signature value, the last field
    files["signature"] = bytes(signature)
    broken = repack(files, signer=None, update_manifest=False)
    found = only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "signature-invalid")
    assert "does not verify" in found.message


@pytest.mark.parametrize("signature", [b"", b"garbage", b"\x30\x03\x02\x01\x01"])
def test_signature_invalid_when_it_is_not_cms(
    signature: bytes, pkpass: bytes, signer: AppleSigner
) -> None:
    files = read_pkpass(pkpass)
    files["signature"] = signature
    broken = repack(files, signer=None, update_manifest=False)
    only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "signature-invalid")


def test_pass_signed_under_another_wwdr(
    pkpass: bytes, signer: AppleSigner, other_signer: AppleSigner
) -> None:
    only(check_pkpass(pkpass, wwdr=other_signer.wwdr, now=NOW), "wwdr-not-issuer")


def test_pass_type_id_in_pass_json_differs_from_the_certificate(
    pkpass: bytes, signer: AppleSigner
) -> None:
    broken = with_pass_json(pkpass, signer, passTypeIdentifier="pass.de.other")
    only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "pass-type-id-mismatch")


def test_team_id_in_pass_json_differs_from_the_certificate(
    pkpass: bytes, signer: AppleSigner
) -> None:
    broken = with_pass_json(pkpass, signer, teamIdentifier="OTHER12345")
    only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "team-id-mismatch")


def test_pass_signed_with_an_expired_certificate(pkpass: bytes, signer: AppleSigner) -> None:
    later = NOW + timedelta(days=LEAF_DAYS + 1)
    only(check_pkpass(pkpass, wwdr=signer.wwdr, now=later), "certificate-expired")


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x05\x06" + b"\0" * 18])
def test_pkpass_unreadable(data: bytes, signer: AppleSigner) -> None:
    only(check_pkpass(data, wwdr=signer.wwdr, now=NOW), "pkpass-unreadable")


@pytest.mark.parametrize("missing", ["pass.json", "manifest.json", "signature"])
def test_pkpass_missing_a_required_file(missing: str, pkpass: bytes, signer: AppleSigner) -> None:
    files = read_pkpass(pkpass)
    del files[missing]
    broken = repack(files, signer=None, update_manifest=False)
    found = only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "pkpass-unreadable")
    assert missing in found.message


def test_pkpass_with_a_path_traversal_name(signer: AppleSigner) -> None:
    found = only(
        check_pkpass(zip_of([("../../pass.json", b"{}")]), wwdr=signer.wwdr, now=NOW),
        "pkpass-unreadable",
    )
    assert "../../pass.json" in found.message


def test_several_mistakes_are_all_reported(pkpass: bytes, signer: AppleSigner) -> None:
    files = read_pkpass(pkpass)
    document = json.loads(files["pass.json"])
    document.update(authenticationToken="short", webServiceURL="http://pass.example.de/x")
    files["pass.json"] = json.dumps(document).encode()
    broken = repack(files, signer=None, update_manifest=False)
    assert codes(errors(check_pkpass(broken, wwdr=signer.wwdr, now=NOW))) == {
        "authentication-token-short",
        "web-service-url-not-https",
        "manifest-hash-mismatch",
    }


@pytest.mark.parametrize("wwdr", ["given", "not given"])
def test_pass_signed_without_the_wwdr_inside(wwdr: str, pkpass: bytes, signer: AppleSigner) -> None:
    """The classic "pass silently refuses to open": the intermediate was left out."""
    files = read_pkpass(pkpass)
    files["signature"] = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(files["manifest.json"])
        .add_signer(signer.certificate, signer.key, hashes.SHA256())
        .sign(
            serialization.Encoding.DER,
            [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
        )
    )
    broken = repack(files, signer=None, update_manifest=False)
    trusted = signer.wwdr if wwdr == "given" else None
    assert "wwdr-not-embedded" in codes(check_pkpass(broken, wwdr=trusted, now=NOW))


def test_pass_carrying_a_damaged_copy_of_the_wwdr(pkpass: bytes, signer: AppleSigner) -> None:
    files = read_pkpass(pkpass)
    wwdr_der = signer.wwdr.public_bytes(serialization.Encoding.DER)
    at = files["signature"].index(wwdr_der) + len(wwdr_der) - 10  # inside its signature bits
    damaged = bytearray(files["signature"])
    damaged[at] ^= 0xFF
    files["signature"] = bytes(damaged)
    broken = repack(files, signer=None, update_manifest=False)
    only(check_pkpass(broken, wwdr=signer.wwdr, now=NOW), "wwdr-not-embedded")
