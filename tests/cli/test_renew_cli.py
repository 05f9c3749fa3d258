"""``wallet passes renew``: one pass or a file of serials, with a result file."""

from __future__ import annotations

import csv
import io
import json
import stat
from pathlib import Path

from tests.cli.admin import (
    Wallet,
    audit_entries,
    issue,
    wallet_fixture,  # noqa: F401 - the `wallet` fixture
)
from tests.factories import stored_row
from wallet.store.db import Database


def test_renew_prints_the_successor_and_when_the_old_pass_retires(
    wallet: Wallet, db: Database
) -> None:
    old = issue(wallet, "library")
    result = wallet.ok("passes", "renew", old, "--json")
    data = json.loads(result.stdout)
    assert data["renews"] == old and data["holder"]["card_number"] == "100200300400"
    assert data["claim_url"].startswith("https://") and not data["claim_link_emailed"]
    assert stored_row(db, old).replaced_by == data["serial"]
    assert stored_row(db, old).state == "valid"  # until the new pass is claimed
    again = wallet("passes", "renew", old)
    assert again.exit_code == 1 and f"renew {data['serial']} instead" in again.stderr
    assert "Traceback" not in again.output
    assert [e.target for e in audit_entries(db, "pass.renew")] == [old]


def test_renew_from_a_file_renews_each_serial_on_its_own_and_writes_a_private_result(
    wallet: Wallet, db: Database, tmp_path: Path
) -> None:
    good = [issue(wallet, "library"), issue(wallet, "parking")]
    revoked = issue(wallet, "library")
    wallet.ok("passes", "revoke", revoked, "--reason", "moved away")
    listing = tmp_path / "serials.txt"
    listing.write_text(f"# due in January\n{good[0]}\n{revoked}\n=HYPERLINK(1)\n{good[1]}\n")
    out = tmp_path / "renewed.csv"
    result = wallet("passes", "renew", "--file", str(listing), "--result", str(out))
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith(f"2 renewed, 2 failed; result in {out}")
    assert "renewing" in result.stderr and "were not renewed" in result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it holds claim links
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert [r["serial"] for r in rows] == [good[0], revoked, "'=HYPERLINK(1)", good[1]]
    assert [bool(r["new_serial"]) for r in rows] == [True, False, False, True]
    assert "issue a new pass instead" in rows[1]["error"] and rows[2]["error"]
    for row in (rows[0], rows[3]):
        assert row["channel"] == "link" and row["claim_url"].startswith("https://")
        assert stored_row(db, row["serial"]).replaced_by == row["new_serial"]
    # The result is never overwritten: a second run needs another file name.
    again = wallet("passes", "renew", "--file", str(listing), "--result", str(out))
    assert again.exit_code == 1 and "exists already" in again.stderr
    assert out.read_bytes() == raw


def test_renew_needs_exactly_one_of_serial_and_file(wallet: Wallet) -> None:
    result = wallet("passes", "renew")
    assert result.exit_code == 2 and "either a SERIAL or --file" in result.stderr
    result = wallet("passes", "renew", "--file", "-", input="# nothing\n")
    assert result.exit_code == 1 and "no serials in standard input" in result.stderr
