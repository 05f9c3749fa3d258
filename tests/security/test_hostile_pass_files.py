"""`wallet doctor` reads .pkpass files from anywhere: a mangled one gets findings, never a crash.

Seeded random mutations of a genuine pass, of the zip and of single entries
inside it (the signature's CMS structure, embedded certificates, pass.json),
reproduce what fuzzing found: lazily parsed ASN.1 and certificate names that
failed only when a check read them.
"""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import pytest

from tests.factories import NOW, PASS_TYPES, City
from tests.formats.test_pkpass import build, make_pass
from wallet.formats.apple_dev_ca import create_dev_chain
from wallet.formats.doctor import check_pkpass
from wallet.formats.pkpass import AppleSigner, load_apple_design, load_apple_signer, read_pkpass

ROUNDS = 400


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, AppleSigner]:
    chain = create_dev_chain(
        tmp_path_factory.mktemp("chain"), team_id="MUSTER1234",
        pass_type_id="pass.de.musterstadt.wallet", now=NOW,
    )  # fmt: skip
    signer = load_apple_signer(
        certificate=chain.certificate, key=chain.key, wwdr=chain.wwdr, passphrase=None
    )
    designs = {t: load_apple_design(Path("templates/passes") / t / "apple") for t in PASS_TYPES}
    return build(make_pass(City()), designs, signer), signer


def _mangle(data: bytes, rng: random.Random) -> bytes:
    mangled = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        mangled[rng.randrange(len(mangled))] = rng.randrange(256)
    if rng.random() < 0.25:
        mangled = mangled[: rng.randrange(len(mangled) + 1)]
    return bytes(mangled)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize("target", ["zip", "signature", "pass.json", "manifest.json"])
def test_mangled_pass_files_get_findings_never_a_crash(
    genuine: tuple[bytes, AppleSigner], target: str
) -> None:
    data, signer = genuine
    files = read_pkpass(data)
    rng = random.Random(f"hostile-{target}")
    for _ in range(ROUNDS):
        changed = True
        if target == "zip":
            suspect = _mangle(data, rng)
        else:
            entry = _mangle(files[target], rng)
            changed = entry != files[target]  # a random byte may equal the one it replaces
            suspect = _zip({**files, target: entry})
        findings = check_pkpass(suspect, wwdr=signer.wwdr, now=NOW)
        assert all(f.code and f.message for f in findings)
        if changed and target != "zip":
            assert any(f.severity == "error" for f in findings), target  # never passed as clean


def test_a_certificate_claiming_an_unknown_x509_version_is_a_finding(
    genuine: tuple[bytes, AppleSigner],
) -> None:
    """cryptography raises InvalidVersion, which is no ValueError: found by fuzzing."""
    data, signer = genuine
    files = read_pkpass(data)
    version_v3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2, in every certificate
    assert version_v3 in files["signature"]
    files["signature"] = files["signature"].replace(version_v3, bytes.fromhex("a00302014f"))
    findings = check_pkpass(_zip(files), wwdr=signer.wwdr, now=NOW)
    assert "signature-invalid" in {f.code for f in findings}
