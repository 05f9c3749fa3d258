"""``wallet passes | status | bundle``: the pass life cycle from the admin's terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from tests.cli.admin import (
    LIBRARY_FIELDS,
    OS_ACTOR,
    Wallet,
    audit_entries,
    issue,
    wallet_fixture,  # noqa: F401 - the `wallet` fixture
)
from wallet.bundle import root_public_key, verify_bundle
from wallet.formats.qrimage import read_qr_image
from wallet.qrtext import decode_qr_text
from wallet.services import passes
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.verifier import Verifier


def states(db: Database) -> dict[str, str]:
    with db.transaction(write=False) as session:
        return {p.serial: p.state for p in passes.list_passes(session, limit=500).items}


def verifier_from_export(wallet: Wallet, tmp_path: Path) -> Verifier:
    out, root = tmp_path / "bundle.jwt", tmp_path / "root.pem"
    wallet.ok("bundle", "export", "--out", str(out), "--root-key", str(root))
    bundle = verify_bundle(
        out.read_text().strip(), root_public_key(root.read_bytes()), now=datetime.now(UTC)
    )
    return Verifier(bundle)


# -- issue ----------------------------------------------------------------------------


def test_issue_prints_serial_claim_url_and_qr_text_and_writes_the_qr_code(
    wallet: Wallet, db: Database, services: Services, tmp_path: Path
) -> None:
    png, svg = tmp_path / "card.png", tmp_path / "card.svg"
    result = wallet.ok(
        "passes", "issue", "--type", "library", *LIBRARY_FIELDS,
        "--qr-png", str(png), "--qr-svg", str(svg),
    )  # fmt: skip
    pairs = (line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    lines = {key.strip(): value.strip() for key, value in pairs}
    serial = result.stdout.splitlines()[0].rsplit(" ", 1)[1]
    claim_url, qr_text = lines["claim URL"], lines["QR text"]
    assert claim_url.startswith(f"{services.settings.public_url}/p/")
    assert qr_text.startswith("WP1") and read_qr_image(png.read_bytes()) == qr_text
    assert "<svg" in svg.read_text()

    secret = claim_url.rsplit("/", 1)[1]
    with db.transaction(write=False) as session:
        opened = passes.pass_by_claim_secret(session, secret, now=datetime.now(UTC))
        assert opened.serial == serial and opened.holder["name"] == "Erika Mustermann"
    (entry,) = audit_entries(db)
    assert (entry.action, entry.target, entry.actor) == ("pass.issue", serial, OS_ACTOR)
    result = verifier_from_export(wallet, tmp_path).check(qr_text)
    assert (result.state, result.claims["serial"]) == ("valid", serial)


def test_issue_from_holder_json_with_a_validity_window_as_json(
    wallet: Wallet, services: Services
) -> None:
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    until = start + timedelta(days=30)
    holder = json.dumps({"plate": "d-ab 1234", "zone": "12"})
    result = wallet.ok(
        "passes", "issue", "--type", "parking", "--holder-json", "-", "--json",
        "--valid-from", start.isoformat(),
        "--valid-until", until.isoformat().replace("+00:00", "Z"),
        input=holder,
    )  # fmt: skip
    issued = json.loads(result.stdout)
    assert issued["holder"] == {"plate": "D-AB 1234", "zone": "12"}
    # The API's one JSON shape: RFC 3339 in UTC with "Z".
    assert issued["valid_from"] == start.isoformat().replace("+00:00", "Z")
    assert issued["valid_until"] == until.isoformat().replace("+00:00", "Z")
    assert issued["claim_url"].startswith(f"{services.settings.public_url}/p/")
    assert issued["qr_text"].startswith("WP1") and issued["token"].count(".") == 2


def test_issue_failures_say_what_to_do(wallet: Wallet, db: Database, tmp_path: Path) -> None:
    base = ("passes", "issue", "--type", "library")
    result = wallet(*base, "--field", "card_number=100200300400")
    assert result.exit_code == 1
    assert "name is required" in result.stderr and "--field NAME=VALUE" in result.stderr
    result = wallet(*base, "--field", "card_number=12", "--field", "name=X")
    assert result.exit_code == 1 and "card_number '12' does not have the expected format" in (
        result.stderr
    )
    result = wallet("passes", "issue", "--type", "pool", *LIBRARY_FIELDS)
    assert result.exit_code == 1 and "unknown pass type 'pool'" in result.stderr
    result = wallet(*base, *LIBRARY_FIELDS, "--valid-until", "2027-01-01T00:00:00")
    assert result.exit_code == 2 and "has no time zone" in result.stderr
    result = wallet(*base, *LIBRARY_FIELDS, "--valid-until", "2099-01-01T00:00:00Z")
    assert result.exit_code == 1 and "beyond the longest validity" in result.stderr
    result = wallet(*base, "--field", "name")
    assert result.exit_code == 2 and "NAME=VALUE" in result.stderr
    result = wallet(*base, "--holder-json", "-", input="[1, 2]")
    assert result.exit_code == 1 and "one JSON object" in result.stderr
    result = wallet(*base, "--holder-json", "-", input="{nope")
    assert result.exit_code == 1 and "not JSON" in result.stderr
    result = wallet(*base, *LIBRARY_FIELDS, "--qr-png", str(tmp_path / "missing" / "x.png"))
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert states(db) == {} and audit_entries(db) == []  # nothing half-done


# -- list and show --------------------------------------------------------------------


def test_list_filters_and_show_with_audit_trail(wallet: Wallet) -> None:
    library = issue(wallet, "library")
    parking = issue(wallet, "parking")
    wallet.ok("passes", "suspend", parking, "--reason", "check")

    found = json.loads(wallet.ok("passes", "list", "--json").stdout)
    assert found["total"] == 2 and [p["serial"] for p in found["passes"]] == [parking, library]
    by_type = json.loads(wallet.ok("passes", "list", "--type", "library", "--json").stdout)
    assert [p["serial"] for p in by_type["passes"]] == [library]
    by_state = json.loads(wallet.ok("passes", "list", "--state", "suspended", "--json").stdout)
    assert [p["serial"] for p in by_state["passes"]] == [parking]
    by_text = json.loads(wallet.ok("passes", "list", "--q", "mustermann", "--json").stdout)
    assert [p["serial"] for p in by_text["passes"]] == [library]
    limited = json.loads(wallet.ok("passes", "list", "--limit", "1", "--json").stdout)
    assert limited["total"] == 2 and len(limited["passes"]) == 1
    table = wallet.ok("passes", "list").stdout
    assert library in table and "Erika Mustermann" in table and "suspended" in table
    assert "no passes match" in wallet.ok("passes", "list", "--q", "nobody").stdout

    shown = json.loads(wallet.ok("passes", "show", parking, "--json").stdout)
    assert shown["state"] == "suspended" and shown["reason"] == "check"
    assert "claim_url" not in shown  # the secret is gone after issuance
    assert decode_qr_text(shown["qr_text"]) == shown["token"]  # for reprinting
    assert [e["action"] for e in shown["audit"]] == ["pass.suspend", "pass.issue"]
    text = wallet.ok("passes", "show", parking).stdout
    assert "state:       suspended (check)" in text and "pass.issue" in text
    assert f"QR text:     {shown['qr_text']}" in text


def test_list_and_show_failures(wallet: Wallet) -> None:
    result = wallet("passes", "show", "NOPE0123456789ab")
    assert result.exit_code == 1 and "no pass with serial NOPE0123456789ab" in result.stderr
    result = wallet("passes", "list", "--type", "pool")
    assert result.exit_code == 1 and "unknown pass type 'pool'" in result.stderr
    result = wallet("passes", "list", "--state", "lost")
    assert result.exit_code == 2 and "'lost' is not one of" in result.stderr
    result = wallet("passes", "list", "--limit", "0")
    assert result.exit_code == 2


# -- state changes --------------------------------------------------------------------


def test_revoke_suspend_reinstate_reissue(wallet: Wallet, db: Database, tmp_path: Path) -> None:
    library, parking = issue(wallet, "library"), issue(wallet, "parking")
    assert "suspended" in wallet.ok("passes", "suspend", parking).stdout
    assert states(db)[parking] == "suspended"
    assert "reinstated" in wallet.ok("passes", "reinstate", parking, "--reason", "ok").stdout
    assert states(db)[parking] == "valid"

    result = wallet.ok("passes", "reissue", parking, "--reason", "lost phone")
    new = result.stdout.split(" as ", 1)[1].split(";", 1)[0]
    assert "claim URL: https://pass.stadt-musterstadt.de/p/" in result.stdout
    assert states(db)[parking] == "revoked" and states(db)[new] == "valid"

    assert "revoked" in wallet.ok("passes", "revoke", library, "--reason", "stolen").stdout
    assert states(db)[library] == "revoked"
    verifier = verifier_from_export(wallet, tmp_path)
    with db.transaction(write=False) as session:
        token = passes.get_pass(session, library).token
    assert verifier.check(token).state == "revoked"

    actions = [(e.action, e.target) for e in audit_entries(db)][2:]
    assert actions == [
        ("pass.suspend", parking),
        ("pass.reinstate", parking),
        ("pass.revoke", parking),  # first: the new pass takes over its plate and zone
        ("pass.issue", new),
        ("pass.revoke", library),
        ("bundle.export", None),
    ]


def test_a_serial_that_starts_with_a_dash_is_a_serial_not_an_option(
    wallet: Wallet, db: Database
) -> None:
    """Serials are random base64url: one in 64 starts with "-"."""
    dashed = "-Vdash_serial-01"
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE passes SET serial = :new WHERE serial = :old"),
            {"new": dashed, "old": issue(wallet, "parking")},
        )
    assert json.loads(wallet.ok("passes", "show", dashed, "--json").stdout)["serial"] == dashed
    wallet.ok("passes", "suspend", dashed, "--reason", "check")
    wallet.ok("passes", "reinstate", dashed)
    wallet.ok("passes", "revoke", "--reason", "stolen", dashed)
    assert states(db)[dashed] == "revoked"
    result = wallet("passes", "revoke", dashed, "--reasn", "typo")
    assert result.exit_code == 2


def test_state_change_failures(wallet: Wallet, db: Database) -> None:
    library = issue(wallet, "library")
    result = wallet("passes", "suspend", library)
    assert result.exit_code == 1 and "library passes cannot be suspended" in result.stderr
    result = wallet("passes", "reinstate", library)
    assert result.exit_code == 1 and "it cannot be reinstated" in result.stderr
    result = wallet("passes", "revoke", library)
    assert result.exit_code == 2 and "Missing option '--reason'" in result.stderr
    result = wallet("passes", "revoke", library, "--reason", "  ")
    assert result.exit_code == 2 and "give a reason" in result.stderr
    result = wallet("passes", "revoke", "--reason", "x")
    assert result.exit_code == 2 and "either a SERIAL or --from-file" in result.stderr
    result = wallet("passes", "revoke", "NOPE0123456789ab", "--reason", "x")
    assert result.exit_code == 1 and "no pass with serial NOPE0123456789ab" in result.stderr
    wallet.ok("passes", "revoke", library, "--reason", "stolen")
    result = wallet("passes", "revoke", library, "--reason", "again")
    assert result.exit_code == 1 and "already revoked (stolen); nothing changed" in result.stderr
    result = wallet("passes", "reissue", library)
    assert result.exit_code == 1 and "issue a new pass instead" in result.stderr
    assert [e.action for e in audit_entries(db)] == ["pass.issue", "pass.revoke"]


def test_revoke_from_file_revokes_each_serial_on_its_own(
    wallet: Wallet, db: Database, tmp_path: Path
) -> None:
    good = [issue(wallet, "library"), issue(wallet, "parking")]
    gone = issue(wallet, "library")
    kept = issue(wallet, "library")
    wallet.ok("passes", "revoke", gone, "--reason", "earlier")
    listing = tmp_path / "serials.txt"
    listing.write_text(
        "# stolen at the library desk\n"
        f"{good[0]}\n\n"
        f"  {good[1]}   # the parking permit\n"
        f"{gone}\n"
        "UNKNOWN000000001\n"
        f"{good[0]}\n"
        "UNKNOWN000000002\n"
    )
    result = wallet("passes", "revoke", "--from-file", str(listing), "--reason", "theft")
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "2 revoked, 1 already revoked, 2 unknown (1 repeated line skipped)",
        "unknown: UNKNOWN000000001",
        "unknown: UNKNOWN000000002",
    ]
    assert "revoking" in result.stderr and "revoking" not in result.stdout  # the progress bar
    assert "error: some serials were not revoked" in result.stderr
    assert states(db) == {good[0]: "revoked", good[1]: "revoked", gone: "revoked", kept: "valid"}
    revocations = [(e.target, e.details["reason"]) for e in audit_entries(db, "pass.revoke")]
    assert revocations == [(gone, "earlier"), (good[0], "theft"), (good[1], "theft")]

    # All known: exit 0; from standard input too.
    result = wallet("passes", "revoke", "--from-file", "-", "--reason", "theft", input=kept + "\n")
    assert result.exit_code == 0 and result.stdout.startswith("1 revoked, 0 already revoked")
    result = wallet("passes", "revoke", "--from-file", "-", "--reason", "x", input="# none\n\n")
    assert result.exit_code == 1 and "no serials in" in result.stderr


# -- status lists and the bundle -----------------------------------------------------


def test_status_publish_signs_changed_lists(wallet: Wallet, db: Database) -> None:
    assert "no status lists yet" in wallet.ok("status", "publish").stdout
    serial = issue(wallet, "library")
    issue(wallet, "parking")
    wallet.ok("passes", "revoke", serial, "--reason", "lost")

    rows = wallet.ok("status", "publish").stdout.splitlines()[1:]
    assert [r.split() for r in rows] == [
        ["library-1", "2", "1", "re-signed"],
        ["parking-1", "1", "0", "re-signed"],
    ]
    rows = wallet.ok("status", "publish").stdout.splitlines()[1:]
    assert all(r.endswith("current, unchanged") for r in rows)
    rows = wallet.ok("status", "publish", "--force").stdout.splitlines()[1:]
    assert all(r.endswith("re-signed") for r in rows)
    publications = audit_entries(db, "status.publish")
    assert [e.details["force"] for e in publications] == [False, True]


def test_bundle_export_to_a_file_or_stdout(
    wallet: Wallet, services: Services, tmp_path: Path
) -> None:
    issue(wallet, "library")
    verifier = verifier_from_export(wallet, tmp_path)
    assert verifier.bundle.version == 1
    assert (tmp_path / "root.pem").read_bytes() == services.keys.root_public_key(
        now=datetime.now(UTC)
    ).pem()

    result = wallet.ok("bundle", "export", "--out", "-", "--force")
    token = result.stdout.strip()
    root = services.keys.root_public_key(now=datetime.now(UTC))
    assert verify_bundle(token, root, now=datetime.now(UTC)).version == 2
    assert "wrote bundle version 2 to standard output" in result.stderr

    result = wallet("bundle", "export")
    assert result.exit_code == 2 and "Missing option '--out'" in result.stderr
    result = wallet("bundle", "export", "--out", str(tmp_path))
    assert result.exit_code == 2 and "is a directory" in result.stderr


# -- the instance's identity ------------------------------------------------------------


def test_admin_shell_with_another_public_url_or_issuer_cannot_sign(
    wallet: Wallet, db: Database
) -> None:
    """A second terminal without the server's WALLET_PUBLIC_URL would sign passes whose
    issuer and status list URI every verifier refuses; the CLI names what differs."""
    first = issue(wallet)
    other = "https://pass.example.org"
    for variable, command in (
        ("WALLET_PUBLIC_URL", ("passes", "issue", "--type", "library", *LIBRARY_FIELDS)),
        ("WALLET_ISSUER", ("passes", "issue", "--type", "library", *LIBRARY_FIELDS)),
        ("WALLET_ISSUER", ("passes", "reissue", first)),
        ("WALLET_PUBLIC_URL", ("bundle", "export", "--out", "-")),
        ("WALLET_ISSUER", ("status", "publish")),
    ):
        result = wallet(*command, **{variable: other})
        assert result.exit_code == 1, (command, result.output)
        assert f"{variable} is {other} here" in result.output
        assert wallet.env["WALLET_PUBLIC_URL"] in result.output  # the service's value
    assert list(states(db)) == [first]  # nothing was signed, the first pass untouched
    assert states(db)[first] == "valid"


def test_bidi_override_in_holder_name_is_refused_by_the_cli(wallet: Wallet, db: Database) -> None:
    holder = json.dumps({"card_number": "100200300400", "name": "Erika \u202eanmretsuM"})
    result = wallet("passes", "issue", "--type", "library", "--holder-json", "-", input=holder)
    assert result.exit_code == 1
    assert "name contains an invisible or control character (U+202E)" in result.stderr
    assert states(db) == {} and audit_entries(db) == []


def test_the_cli_and_the_api_show_a_pass_in_one_json_shape(
    wallet: Wallet, db: Database, services: Services
) -> None:
    """Once the CLI's "as the API shows it" was not: other keys, other time format."""
    from wallet.services import accounts
    from wallet.web import create_app

    issued = json.loads(
        wallet.ok("passes", "issue", "--type", "library", *LIBRARY_FIELDS, "--json").stdout
    )
    serial = issued["serial"]
    with db.transaction(write=True) as session:
        token = accounts.create_api_token(
            session, name="shape", role="issuer", actor="test", audit_key=services.audit_key,
            now=datetime.now(UTC),
        ).secret  # fmt: skip
    app = create_app(services.settings, services=services, db=db, config={"TESTING": True})
    response = app.test_client().get(
        f"/api/v1/passes/{serial}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.get_json()
    from_api = response.get_json()
    assert {k: v for k, v in issued.items() if k != "claim_url"} == from_api
    shown = json.loads(wallet.ok("passes", "show", serial, "--json").stdout)
    extras = {"status_list", "update_tag", "wallet_deliveries", "audit"}
    assert {k: v for k, v in shown.items() if k not in extras} == from_api
    listed = json.loads(wallet.ok("passes", "list", "--json").stdout)["passes"]
    assert listed == [from_api]
