"""``wallet import``: existing card holders from a German Excel export, checked, then issued."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from tests.cli.admin import (
    Wallet,
    audit_entries,
    cli_env,
    wallet_fixture,  # noqa: F401 - the `wallet` fixture
)
from wallet.services import audit, imports
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import HolderContactRow, PassRow

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "library_export_excel.csv"


def result_rows(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with its BOM
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline=""), delimiter=";"))


def passes_in(db: Database) -> dict[str, str]:
    """external key -> the holder's name, of every imported pass."""
    with db.transaction(write=False) as session:
        rows = session.scalars(select(PassRow).where(PassRow.external_key.is_not(None)))
        return {row.external_key or "": row.holder["name"] for row in rows}


def test_a_german_excel_export_is_imported_keeping_the_card_numbers(
    wallet: Wallet, db: Database, tmp_path: Path
) -> None:
    result = tmp_path / "ergebnis.csv"
    run = wallet.ok("import", str(SAMPLE), "--type", "library", "--result", str(result))
    assert "4 auszustellen" in run.stderr
    imported = passes_in(db)
    assert imported["100200300401"] == "Müller, Jürgen"  # Windows-1252 read right
    assert set(imported) == {"100200300401", "100200300402", "100200300403", "100200300404"}
    with db.transaction(write=False) as session:
        numbers = {row.holder["card_number"] for row in session.scalars(select(PassRow))}
        contacts = session.scalar(select(func.count()).select_from(HolderContactRow))
    assert numbers == set(imported)  # the library's number stays the holder's number
    assert contacts == 4
    rows = result_rows(result)
    assert rows[0][:4] == ["Zeile", "Schlüssel", "Status", "Seriennummer"]
    assert [r[0] for r in rows[1:]] == ["2", "3", "4", "5"]  # rows as Excel numbers them
    assert all(r[2] == "ausgestellt" and "/p/" in r[4] and r[5] == "link" for r in rows[1:])
    assert stat.S_IMODE(os.stat(result).st_mode) == 0o600  # it holds claim links


def test_running_the_same_file_again_issues_nothing_twice(
    wallet: Wallet, db: Database, tmp_path: Path
) -> None:
    wallet.ok("import", str(SAMPLE), "--type", "library", "--result", str(tmp_path / "1.csv"))
    again = wallet.ok(
        "import", str(SAMPLE), "--type", "library", "--result", str(tmp_path / "2.csv")
    )
    assert "0 auszustellen, 4 bereits ausgestellt" in again.stderr
    assert len(passes_in(db)) == 4
    statuses = {r[2] for r in result_rows(tmp_path / "2.csv")[1:]}
    assert statuses == {"bereits ausgestellt"}


def _export(path: Path, rows: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Kennzeichen", "Zone", "E-Mail"])
    writer.writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding))
    return path


def test_the_check_names_row_column_and_problem_and_issues_nothing(
    wallet: Wallet, db: Database, tmp_path: Path
) -> None:
    export = _export(
        tmp_path / "register.csv",
        [
            ["D-AB 1234", "12", "a@example.de"],
            ["not a plate", "12", ""],
            ["D-CD 5", "", ""],
            ["D-AB 1234", "12", ""],
            ["K-LM 42", "3", "kein@"],
        ],
    )
    dry = wallet("import", str(export), "--type", "parking", "--dry-run")
    assert dry.exit_code == 1
    assert "Zeile 3, Spalte Kennzeichen: Kennzeichen hat nicht das erwartete Format" in dry.stderr
    assert "Zeile 4, Spalte Zone: Zone ist leer" in dry.stderr
    assert "Zeile 5" in dry.stderr and "doppelt in der Datei (wie Zeile 2)" in dry.stderr
    assert "Zeile 6, Spalte E-Mail" in dry.stderr
    english = wallet("import", str(export), "--type", "parking", "--dry-run", "--lang", "en")
    assert "row 3, column Kennzeichen: Licence plate does not have the expected format" in (
        english.stderr
    )
    refused = wallet(
        "import", str(export), "--type", "parking", "--result", str(tmp_path / "r.csv")
    )
    assert refused.exit_code != 0 and "--skip-invalid" in refused.output
    assert passes_in(db) == {} and not (tmp_path / "r.csv").exists()
    report = json.loads(wallet("import", str(export), "--type", "parking", "--dry-run",
                               "--json").stdout)  # fmt: skip
    assert [(p["row"], p["code"]) for p in report["problems"]] == [
        (3, "format"), (4, "empty"), (5, "duplicate"), (6, "email"),
    ]  # fmt: skip


def test_skip_invalid_issues_the_rest_and_lists_the_skipped_rows(
    wallet: Wallet, db: Database, tmp_path: Path
) -> None:
    export = _export(tmp_path / "register.csv", [["D-AB 1234", "12", ""], ["nonsense", "1", ""]])
    result = tmp_path / "r.csv"
    wallet.ok("import", str(export), "--type", "parking", "--skip-invalid", "--result", str(result))
    assert len(passes_in_type(db, "parking")) == 1
    rows = result_rows(result)
    assert [(r[0], r[2]) for r in rows[1:]] == [("2", "ausgestellt"), ("3", "übersprungen")]
    assert "format" in rows[2][6]


def passes_in_type(db: Database, type_id: str) -> list[str]:
    with db.transaction(write=False) as session:
        return list(session.scalars(select(PassRow.serial).where(PassRow.pass_type == type_id)))


def test_a_file_that_is_not_csv_gets_a_message_not_a_traceback(
    wallet: Wallet, tmp_path: Path
) -> None:
    xlsx = tmp_path / "export.xlsx"
    xlsx.write_bytes(b"PK\x03\x04\x00\x00binary")
    result = wallet("import", str(xlsx), "--type", "library", "--dry-run")
    assert result.exit_code != 0 and "save it as CSV" in result.output
    missing = wallet("import", str(tmp_path / "none.csv"), "--type", "library")
    assert missing.exit_code != 0 and "cannot read" in missing.output
    header_only = tmp_path / "header.csv"
    header_only.write_text("Ausweisnummer;Vorname\n")
    no_name = wallet("import", str(header_only), "--type", "library", "--dry-run")
    assert no_name.exit_code == 1 and "Spalte für „Name“ fehlt" in no_name.stderr


def test_a_run_killed_with_sigkill_continues_where_it_stopped(
    db: Database, services: Services, tmp_path: Path
) -> None:
    """kill -9 mid-run, run again: every row once, every pass with its audit entry."""
    rows = [[f"D-{chr(65 + i // 900)}{chr(65 + (i // 30) % 26)} {i % 900 + 1}", "12", ""]
            for i in range(1500)]  # fmt: skip
    export = _export(tmp_path / "big.csv", rows)
    settings = services.settings
    env = {**os.environ, **{k: v for k, v in cli_env(
        db, settings.signing_keys_dir, tmp_path / "instance", settings.public_url
    ).items() if v is not None}}  # fmt: skip
    for name in [k for k, v in cli_env(db, settings.signing_keys_dir, tmp_path, "x").items()
                 if v is None]:  # fmt: skip
        env.pop(name, None)
    command = [
        str(Path(sys.executable).parent / "wallet"),
        "import",
        str(export),
        "--type",
        "parking",
    ]
    first = subprocess.Popen(
        [*command, "--result", str(tmp_path / "1.csv")], env=env, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while len(passes_in_type(db, "parking")) < 1 and time.monotonic() < deadline:
        assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    halfway = len(passes_in_type(db, "parking"))
    assert 0 < halfway < 1500, f"the run was not killed mid-way ({halfway} issued)"
    assert halfway % imports.BATCH_SIZE == 0  # whole batches only
    second = subprocess.run(
        [*command, "--result", str(tmp_path / "2.csv")], env=env, capture_output=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr.decode()
    assert len(passes_in_type(db, "parking")) == 1500
    issued = audit_entries(db, "pass.issue")
    assert len(issued) == 1500  # no pass without its audit entry, none twice
    with db.transaction(write=False) as session:
        assert audit.verify_chain(session, key=services.audit_key).intact


def test_the_purge_command_reports_what_it_would_remove_and_changes_nothing_on_a_dry_run(
    wallet: Wallet, db: Database, tmp_path: Path
) -> None:
    wallet.ok("import", str(SAMPLE), "--type", "library", "--result", str(tmp_path / "r.csv"))
    dry = wallet.ok("holders", "purge", "--dry-run")
    assert "would delete the contacts of 0" in dry.stdout and "would clear 0" in dry.stdout
    with db.transaction(write=False) as session:
        kept = session.scalar(select(func.count()).select_from(HolderContactRow))
    assert kept == 4
    assert wallet("holders", "purge", "--older-than", "soon").exit_code == 2


def test_letters_for_holders_without_e_mail_are_sorted_by_postcode_and_carry_their_link(
    wallet: Wallet, db: Database, tmp_path: Path
) -> None:
    import pypdfium2 as pdfium

    from wallet.formats.qrimage import read_qr_image

    result = tmp_path / "r.csv"
    wallet.ok("import", str(SAMPLE), "--type", "library", "--result", str(result))
    links = {r[4] for r in result_rows(result)[1:]}
    out = tmp_path / "letters"
    made = wallet.ok("letters", str(result), "--out", str(out), "--per-file", "2")
    assert "3 letters, sorted by postcode" in made.stdout  # row 4 has no postal address
    assert "no postal address" in made.stderr
    files = sorted(out.glob("letters-*.pdf"))
    assert [f.name for f in files] == ["letters-0001.pdf", "letters-0002.pdf"]  # 2 + 1
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    pages = [page for f in files for page in pdfium.PdfDocument(f.read_bytes())]
    texts = [page.get_textpage().get_text_range() for page in pages]
    assert "40212 Düsseldorf" in texts[0]  # Königsallee's postcode comes first
    assert all("Ihr digitaler Ausweis" in t and "Your digital pass" in t for t in texts)
    assert all("Stadtbüchereien" in t for t in texts)  # the sender line
    first = texts[0]
    printed = next(link for link in links if link in first.replace("\r\n", "").replace("\n", ""))
    image = pages[0].render(scale=200 / 72).to_pil()
    upper_right = image.crop((image.width // 2, 0, image.width, image.height // 2))
    buffer = io.BytesIO()
    upper_right.save(buffer, format="PNG")
    assert read_qr_image(buffer.getvalue()) == printed  # the link's QR code, for the camera


def test_no_letter_for_a_link_replaced_since(wallet: Wallet, db: Database, tmp_path: Path) -> None:
    result = tmp_path / "r.csv"
    wallet.ok("import", str(SAMPLE), "--type", "library", "--result", str(result))
    serial = result_rows(result)[1][3]
    wallet.ok("passes", "new-link", serial)
    made = wallet.ok("letters", str(result), "--out", str(tmp_path / "l"))
    assert f"no letter for {serial}: the link was replaced" in made.stderr
    assert "2 letters" in made.stdout
    not_a_result = tmp_path / "x.csv"
    not_a_result.write_text("a;b\n1;2\n")
    refused = wallet("letters", str(not_a_result), "--out", str(tmp_path / "m"))
    assert refused.exit_code != 0 and "not a result of `wallet import`" in refused.output
