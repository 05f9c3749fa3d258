"""``wallet doctor``: one test per mistake it must name, from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from tests.cli.admin import Wallet, cli_env
from tests.formats.test_doctor import png, repack, with_pass_json
from wallet.config import Settings
from wallet.formats import google
from wallet.formats.pkpass import AppleSigner, read_pkpass
from wallet.services import passes, wallets
from wallet.services.context import Services
from wallet.store.db import Database

Broken = Callable[[bytes, AppleSigner], bytes]


@pytest.fixture
def set_up(db: Database, services: Services, tmp_path: Path) -> Wallet:
    """An instance after `wallet setup` in development mode (dev Apple chain included)."""
    env = cli_env(db, services.settings.signing_keys_dir, tmp_path / "instance",
                  "https://pass.stadt-musterstadt.de")  # fmt: skip
    wallet = Wallet(CliRunner(), env)
    assert "Apple Wallet: development certificates" in wallet.ok("setup").stdout
    return wallet


@pytest.fixture
def pkpass(set_up: Wallet, db: Database, tmp_path: Path) -> tuple[bytes, AppleSigner]:
    """A real pass of this instance, built now, and the signer that made it."""
    settings = Settings.from_env({k: v for k, v in set_up.env.items() if v is not None})
    services = Services.from_settings(settings)
    now = datetime.now(UTC)
    with db.transaction(write=True) as session:
        issued = passes.issue_pass(
            session, services, type_id="library",
            holder={"card_number": "100200300400", "name": "Erika Mustermann"},
            actor="test", now=now,
        )  # fmt: skip
        value = passes.wallet_pass_by_claim_secret(session, services, issued.claim_secret, now=now)
        data = wallets.pkpass_for(services, value, now=now)
    return data, services.formats.apple.signer


def doctor(wallet: Wallet, tmp_path: Path, data: bytes | None = None, *extra: str):  # type: ignore[no-untyped-def]
    args = ["doctor", *extra]
    if data is not None:
        path = tmp_path / "suspect.pkpass"
        path.write_bytes(data)
        args.append(str(path))
    return wallet(*args)


def test_a_clean_development_setup_passes_with_a_warning(set_up: Wallet, tmp_path: Path) -> None:
    result = doctor(set_up, tmp_path)
    assert result.exit_code == 0, result.output
    assert "[apple-development-certificates]" in result.output
    assert "ERROR" not in result.output


def test_a_clean_pass_passes(set_up: Wallet, tmp_path: Path, pkpass: tuple[bytes, object]) -> None:
    result = doctor(set_up, tmp_path, pkpass[0])
    assert result.exit_code == 0, result.output
    assert "ok       " + str(tmp_path / "suspect.pkpass") in result.output


def test_certificate_for_another_pass_type_id(set_up: Wallet, tmp_path: Path) -> None:
    result = set_up("doctor", WALLET_APPLE_PASS_TYPE_ID="pass.de.example.someone.else")
    assert result.exit_code == 1 and "[pass-type-id-mismatch]" in result.output


def test_certificate_for_another_team(set_up: Wallet, tmp_path: Path) -> None:
    result = set_up("doctor", WALLET_APPLE_TEAM_ID="ZZZZZZZZZZ")
    assert result.exit_code == 1 and "[team-id-mismatch]" in result.output


def test_wwdr_that_did_not_issue_the_pass_certificate(
    set_up: Wallet, tmp_path: Path, db: Database
) -> None:
    from wallet.formats.apple_dev_ca import create_dev_chain

    other = create_dev_chain(
        tmp_path / "other",
        team_id="DEVTEAM000",
        pass_type_id=Settings.apple_pass_type_id,
        now=datetime.now(UTC),
    )
    dev = tmp_path / "instance" / "apple-dev"
    result = set_up(
        "doctor",
        WALLET_APPLE_PASS_CERT=str(dev / "pass.pem"),
        WALLET_APPLE_PASS_KEY=str(dev / "pass.key.pem"),
        WALLET_APPLE_WWDR_CERT=str(other.wwdr),
        WALLET_APPLE_PASS_TYPE_ID=Settings.apple_pass_type_id,
        WALLET_APPLE_TEAM_ID="DEVTEAM000",
    )
    assert result.exit_code == 1 and "[wwdr-not-issuer]" in result.output


def test_certificates_expiring_soon(set_up: Wallet, tmp_path: Path) -> None:
    from wallet.formats.apple_dev_ca import create_dev_chain

    soon = create_dev_chain(tmp_path / "soon", team_id="DEVTEAM000",
                            pass_type_id=Settings.apple_pass_type_id, now=datetime.now(UTC),
                            valid_days=10)  # fmt: skip
    result = set_up(
        "doctor",
        WALLET_APPLE_PASS_CERT=str(soon.certificate),
        WALLET_APPLE_PASS_KEY=str(soon.key),
        WALLET_APPLE_WWDR_CERT=str(soon.wwdr),
        WALLET_APPLE_PASS_TYPE_ID=Settings.apple_pass_type_id,
        WALLET_APPLE_TEAM_ID="DEVTEAM000",
    )
    assert "[certificate-expiring]" in result.output


def test_missing_icon_in_a_design(set_up: Wallet, tmp_path: Path) -> None:
    import shutil

    types = tmp_path / "types"
    shutil.copytree(Path("templates/passes"), types)
    (types / "library" / "apple" / "icon@3x.png").unlink()
    result = set_up("doctor", WALLET_PASS_TYPES_DIR=str(types))
    assert result.exit_code == 1
    assert "[icon-missing]" in result.output and "icon@3x.png" in result.output


def test_plain_http_web_service_url(set_up: Wallet, tmp_path: Path) -> None:
    result = set_up("doctor", WALLET_PUBLIC_URL="http://pass.stadt-musterstadt.de")
    assert result.exit_code == 1 and "[web-service-url-not-https]" in result.output


MISTAKES: dict[str, Broken] = {
    "authentication-token-short": lambda d, s: with_pass_json(d, s, authenticationToken="short"),
    "web-service-url-not-https": lambda d, s: with_pass_json(
        d, s, webServiceURL="http://pass.stadt-musterstadt.de/apple"
    ),
    "barcode-message-not-string": lambda d, s: with_pass_json(
        d,
        s,
        barcodes=[
            {"format": "PKBarcodeFormatQR", "message": 12345, "messageEncoding": "iso-8859-1"}
        ],
    ),
    "file-not-in-manifest": lambda d, s: repack(
        {**read_pkpass(d), "strip.png": png((375, 123))}, signer=None, update_manifest=False
    ),
    "manifest-file-missing": lambda d, s: repack(
        {k: v for k, v in read_pkpass(d).items() if k != "logo@2x.png"},
        signer=None,
        update_manifest=False,
    ),
    "manifest-hash-mismatch": lambda d, s: repack(
        {**read_pkpass(d), "icon.png": png((29, 29))}, signer=None, update_manifest=False
    ),
    "signature-invalid": lambda d, s: repack(
        {**read_pkpass(d), "icon.png": png((29, 29))}, signer=None, update_manifest=True
    ),
    "pkpass-unreadable": lambda d, s: b"this is not a zip file",
}


@pytest.mark.parametrize("code", sorted(MISTAKES))
def test_each_pass_file_mistake_is_named(
    code: str, set_up: Wallet, tmp_path: Path, pkpass: tuple[bytes, AppleSigner]
) -> None:
    data, signer = pkpass
    result = doctor(set_up, tmp_path, MISTAKES[code](data, signer))
    assert result.exit_code == 1, result.output
    assert f"[{code}]" in result.output
    assert "problem" in result.stderr  # the summary says how many, and where to look


def test_a_save_link_that_is_too_long(set_up: Wallet, tmp_path: Path) -> None:
    link = google.SAVE_URL_PREFIX + "e" * (google.MAX_SAVE_LINK_LENGTH + 1)
    result = set_up("doctor", link)
    assert result.exit_code == 1 and "[save-link-too-long]" in result.output


def test_a_pass_file_that_cannot_be_read(set_up: Wallet, tmp_path: Path) -> None:
    result = set_up("doctor", str(tmp_path / "nope.pkpass"))
    assert result.exit_code == 1 and "[file-unreadable]" in result.output


def test_a_broken_google_key_file_is_named(set_up: Wallet, tmp_path: Path) -> None:
    key = tmp_path / "account.json"
    key.write_text(json.dumps({"type": "service_account"}))
    result = set_up(
        "doctor", WALLET_GOOGLE_SERVICE_ACCOUNT=str(key), WALLET_GOOGLE_ISSUER_ID="3388000000022"
    )
    assert result.exit_code == 1 and "[google-setup-unusable]" in result.output


def test_plain_http_on_this_machine_is_only_a_warning(set_up: Wallet) -> None:
    result = set_up("doctor", WALLET_PUBLIC_URL="http://127.0.0.1:8000")
    assert result.exit_code == 0, result.output
    assert "warning  configuration: [web-service-url-not-https]" in result.output


def test_setup_names_wallet_set_up_problems_but_still_prepares_the_instance(
    set_up: Wallet, tmp_path: Path
) -> None:
    dev = tmp_path / "instance" / "apple-dev"
    result = set_up(
        "setup",
        WALLET_APPLE_PASS_CERT=str(dev / "pass.pem"),
        WALLET_APPLE_PASS_KEY=str(dev / "pass.key.pem"),
        WALLET_APPLE_WWDR_CERT=str(dev / "wwdr.pem"),
        WALLET_APPLE_PASS_TYPE_ID="pass.de.example.other",
        WALLET_APPLE_TEAM_ID="DEVTEAM000",
    )
    assert result.exit_code == 0, result.output
    assert "warning: wallet set-up: [pass-type-id-mismatch]" in result.stderr
    assert "run `wallet doctor`" in result.stderr


@pytest.mark.real_clock  # openssl checks the chain against the machine's clock
def test_dev_certs_makes_a_chain_that_doctor_and_openssl_accept(tmp_path: Path) -> None:
    import subprocess

    from tests.openssl import OPENSSL

    runner = CliRunner()
    env = {"WALLET_APPLE_PASS_TYPE_ID": "pass.de.example.ci", "WALLET_APPLE_TEAM_ID": "CITEAM0001"}
    from wallet.cli import cli

    made = runner.invoke(cli, ["dev-certs", "--out", str(tmp_path / "chain")], env=env)
    assert made.exit_code == 0, made.output
    assert "do not install on a real iPhone" in made.output
    chain = tmp_path / "chain"
    assert oct((chain / "pass.key.pem").stat().st_mode & 0o777) == "0o600"
    verified = subprocess.run(
        [str(OPENSSL), "verify", "-CAfile", str(chain / "root.pem"), "-untrusted",
         str(chain / "wwdr.pem"), str(chain / "pass.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    again = runner.invoke(cli, ["dev-certs", "--out", str(chain)], env=env)
    assert again.exit_code != 0 and "exists already" in again.output  # never overwritten


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", jwt.encode({"aud": "google"}, "k" * 32, algorithm="HS256")],
)
def test_a_garbage_save_link_is_never_called_ok(set_up: Wallet, token: str) -> None:
    """Without Google set up here the doctor cannot check the signature; the link's shape
    it can, and a link Google would refuse is an error, not "ok"."""
    result = set_up("doctor", google.SAVE_URL_PREFIX + token)
    assert result.exit_code == 1, result.output
    assert "[save-link-unreadable]" in result.output
    assert "ok       save link" not in result.output


def test_a_well_formed_save_link_without_google_set_up_is_a_warning(set_up: Wallet) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {
        "iss": "wallet@city.iam.gserviceaccount.com", "aud": "google", "typ": "savetowallet",
        "origins": ["https://pass.stadt-musterstadt.de"],
        "payload": {"genericObjects": [{"id": "3388000000022.abc"}]},
    }  # fmt: skip
    result = set_up("doctor", google.SAVE_URL_PREFIX + jwt.encode(claims, key, algorithm="RS256"))
    assert "[save-link-signature-unchecked]" in result.output
    assert "[save-link-unreadable]" not in result.output


def test_stand_in_wallet_buttons_are_named_until_the_official_artwork_is_in_place(
    set_up: Wallet, tmp_path: Path
) -> None:
    """A city once went live with look-alike badges: the doctor says what to put where."""
    before = doctor(set_up, tmp_path)
    assert "[wallet-buttons-stand-in]" in before.output
    assert "apple-wallet-de.svg" in before.output and "google-wallet-en.svg" in before.output
    folder = tmp_path / "instance" / "wallet-buttons"
    folder.mkdir()
    for name in ("apple-wallet-de.svg", "apple-wallet-en.svg", "google-wallet-de.svg"):
        (folder / name).write_text("<svg/>")
    partly = doctor(set_up, tmp_path)
    assert "google-wallet-en.svg" in partly.output and "apple-wallet-de.svg" not in partly.output
    (folder / "google-wallet-en.svg").write_text("<svg/>")
    assert "[wallet-buttons-stand-in]" not in doctor(set_up, tmp_path).output
