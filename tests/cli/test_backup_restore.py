"""``wallet backup`` / ``wallet restore``: an instance taken whole, and brought back elsewhere.

A production-like instance (encrypted keys, a sealed audit chain with its
checkpoint outside the database) on each backend is backed up, restored into a
fresh folder and a fresh database, and must then verify every pass it issued,
hold every revocation and never hand out a status index twice.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from click.testing import CliRunner
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from tests.cli.admin import Wallet, audit_entries
from tests.database import PG_URL, head_revision, throwaway_postgres
from wallet.bundle import root_public_key, verify_bundle
from wallet.config import Settings
from wallet.services import audit, passes
from wallet.services.context import Services
from wallet.store.db import MIGRATIONS, Database
from wallet.store.models import PassRow
from wallet.verifier import Verifier

PASSPHRASE = "the city's key passphrase 4711"
SESSION_SECRET = "f" * 64
NAMES = ["Erika Mustermann", "Hans Müller", "Ay\u015fe Y\u0131lmaz"]
PLATES = ["D-AB 1234", "D-CD 567", "D-EF 89"]


@dataclass(frozen=True)
class Instance:
    """One instance of the service: a database, a keys folder, an instance folder."""

    wallet: Wallet
    folder: Path
    database: Database

    @property
    def keys(self) -> Path:
        return self.folder / "keys"

    @property
    def instance(self) -> Path:
        return self.folder / "instance"


def make_instance(folder: Path, database: Database, *, sqlite_default: bool = False) -> Instance:
    env: dict[str, str | None] = {
        "WALLET_DATABASE_URL": None if sqlite_default else database.url,
        "WALLET_SIGNING_KEYS_DIR": str(folder / "keys"),
        "WALLET_INSTANCE_DIR": str(folder / "instance"),
        "WALLET_PUBLIC_URL": "https://pass.stadt-musterstadt.de",
        "WALLET_ISSUER": None,
        "WALLET_DEV_MODE": "0",
        "WALLET_KEY_PASSPHRASE": PASSPHRASE,
        "WALLET_SECRET_KEY": SESSION_SECRET,
        "WALLET_ACTOR": None,
        "WALLET_PASS_TYPES_DIR": None,
    }
    return Instance(Wallet(CliRunner(), env), folder, database)


def issue(wallet: Wallet, type_id: str, **fields: str) -> str:
    pairs = [part for name, value in fields.items() for part in ("--field", f"{name}={value}")]
    result = wallet.ok("passes", "issue", "--type", type_id, *pairs)
    return result.stdout.splitlines()[0].rsplit(" ", 1)[1]


@pytest.fixture
def source(db: Database, tmp_path: Path) -> Instance:
    """A populated instance: both pass types, revoked and suspended ones, a sealed chain."""
    instance = make_instance(tmp_path / "source", db)
    wallet = instance.wallet
    wallet.ok("setup")
    for n, name in enumerate(NAMES):
        issue(wallet, "library", card_number=f"10020030040{n}", name=name)
    for plate in PLATES:
        issue(wallet, "parking", plate=plate, zone="12")
    library, parking = serials_by_type(db)
    wallet.ok("passes", "revoke", library[0], "--reason", "card reported stolen")
    wallet.ok("passes", "revoke", parking[0], "--reason", "moved away")
    wallet.ok("passes", "suspend", parking[1], "--reason", "unpaid fee")
    wallet.ok("status", "publish")
    assert "intact" in wallet.ok("audit", "verify").stdout  # seals: a checkpoint outside
    buttons = instance.instance / "wallet-buttons"  # the city's official artwork
    buttons.mkdir()
    (buttons / "apple-wallet-de.svg").write_text("<svg><!-- licensed artwork --></svg>")
    assert (instance.instance / "audit-checkpoint.json").is_file()
    return instance


@pytest.fixture
def fresh_database(db: Database, tmp_path: Path) -> Iterator[Database]:
    """An empty database of the source's kind on "another machine" (PostgreSQL: a new one)."""
    if db.is_sqlite:
        path = tmp_path / "elsewhere" / "instance" / "wallet.sqlite3"
        database = Database(f"sqlite:///{path}")
        path.unlink()  # the engine connects when first used: after the restore
        path.parent.rmdir()
        yield database
        database.dispose()
        return
    with throwaway_postgres("wallet_restore") as url:
        database = Database(url)
        yield database
        database.dispose()


@pytest.fixture
def target(fresh_database: Database, tmp_path: Path) -> Instance:
    """A fresh machine: nothing in its folders; SQLite in its instance folder by default."""
    return make_instance(
        tmp_path / "elsewhere", fresh_database, sqlite_default=fresh_database.is_sqlite
    )


def serials_by_type(db: Database) -> tuple[list[str], list[str]]:
    with db.transaction(write=False) as session:
        rows = session.execute(select(PassRow.serial, PassRow.pass_type).order_by(PassRow.id))
        pairs = list(rows)
    return [s for s, t in pairs if t == "library"], [s for s, t in pairs if t == "parking"]


def tokens_and_states(db: Database) -> dict[str, tuple[str, str]]:
    with db.transaction(write=False) as session:
        return {
            p.serial: (p.token, p.state.value) for p in passes.list_passes(session, limit=500).items
        }


def status_slots(db: Database) -> list[tuple[int, int]]:
    with db.transaction(write=False) as session:
        rows = session.execute(select(PassRow.status_list_id, PassRow.status_idx))
        return [(int(a), int(b)) for a, b in rows]


def verifier_of(instance: Instance) -> Verifier:
    out, root = instance.folder / "bundle.jwt", instance.folder / "root.pem"
    instance.wallet.ok("bundle", "export", "--out", str(out), "--root-key", str(root))
    bundle = verify_bundle(
        out.read_text().strip(), root_public_key(root.read_bytes()), now=datetime.now(UTC)
    )
    return Verifier(bundle)


def tree(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def backup(instance: Instance) -> Path:
    archive = instance.folder.parent / f"backup-{uuid.uuid4().hex[:6]}.tar.gz"
    result = instance.wallet.ok("backup", str(archive))
    assert f"backup written: {archive}" in result.stdout
    return archive


def assert_nothing_restored(target: Instance) -> None:
    assert tree(target.keys) == {} and tree(target.instance) == {}
    if target.database.is_sqlite:
        path = Path(make_url(target.database.url).database or "")
        assert not path.exists() or path.stat().st_size == 0
    else:
        with target.database.engine.connect() as connection:
            tables = connection.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
        assert tables == 0


# -- the round trip ---------------------------------------------------------------------


def test_restored_instance_verifies_every_pass_and_holds_every_revocation(
    source: Instance, target: Instance
) -> None:
    before = tokens_and_states(source.database)
    assert sorted(state for _, state in before.values()) == [
        "revoked", "revoked", "suspended", "valid", "valid", "valid",
    ]  # fmt: skip
    archive = source.folder.parent / "nightly.tar.gz"
    made = source.wallet.ok("backup", str(archive))
    steps = ("copying the instance files", "the database", "copying the key files", "writing")
    assert all(step in made.stderr for step in steps), made.stderr  # progress on stderr

    result = target.wallet.ok("restore", str(archive))
    assert "wallet audit verify" in result.stdout  # says what to run next
    assert "checking the archive" in result.stderr
    buttons = "wallet-buttons/apple-wallet-de.svg"
    assert tree(target.instance)[buttons] == tree(source.instance)[buttons]
    assert tree(target.keys) == tree(source.keys)  # the key files, byte for byte
    pem = (target.keys / "audit.key.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")  # still encrypted
    assert (target.instance / "audit-checkpoint.json").read_bytes() == (
        source.instance / "audit-checkpoint.json"
    ).read_bytes()
    if target.database.is_sqlite:
        database_file = target.instance / "wallet.sqlite3"
        assert stat.S_IMODE(database_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(target.instance.stat().st_mode) == 0o700

    # The archive's own checkpoint: intact without `wallet audit accept-restore`.
    verified = target.wallet.ok("audit", "verify")
    assert "the audit chain is intact" in verified.stdout, verified.output
    assert [e.action for e in audit_entries(target.database)][-1] == "backup.restore"

    # Every pass: the restored keys and published lists give the same verdict as before.
    verifier = verifier_of(target)
    assert tokens_and_states(target.database) == before
    verdicts = {serial: verifier.check(token).state for serial, (token, _) in before.items()}
    assert verdicts == {serial: state for serial, (_, state) in before.items()}

    # New issuance takes fresh status indices, never one a restored pass holds, nor one
    # a pass issued after the backup (unknown here) may hold: new passes, new lists.
    taken = set(status_slots(target.database))
    for n in range(12):
        issue(target.wallet, "library", card_number=f"20020030040{n % 10}", name="Neu")
    slots = status_slots(target.database)
    assert len(slots) == len(set(slots)) == len(taken) + 12
    assert taken <= set(slots)
    new_lists = {list_id for list_id, _ in set(slots) - taken}
    assert len(new_lists) == 1 and not new_lists & {list_id for list_id, _ in taken}
    new = [s for s in tokens_and_states(target.database) if s not in before]
    fresh = verifier_of(target)
    assert {fresh.check(tokens_and_states(target.database)[s][0]).state for s in new} == {"valid"}

    # The restored machine backs up in turn; its SQLite file (in the instance folder)
    # goes in once, as the snapshot, never copied as a plain instance file.
    again = target.folder.parent / "again.tar.gz"
    target.wallet.ok("backup", str(again))
    with tarfile.open(again) as tar:
        names = tar.getnames()
    assert not [n for n in names if n.startswith("instance/") and "sqlite3" in n], names
    assert [n for n in names if n.startswith("database/")] == [
        "database/wallet.sqlite3" if target.database.is_sqlite else "database/wallet.pgdump"
    ]


def test_archive_is_private_and_holds_no_secret_in_its_manifest_or_output(
    source: Instance, target: Instance
) -> None:
    archive = source.folder.parent / "nightly.tar.gz"
    made = source.wallet.ok("backup", str(archive))
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert not [p for p in archive.parent.iterdir() if p.name.startswith(".")]  # no leftovers

    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest_file = tar.extractfile(names[0])
        assert manifest_file is not None
        manifest = json.loads(manifest_file.read())
        raw = b"".join(
            (tar.extractfile(m) or io.BytesIO()).read() for m in tar.getmembers() if m.isfile()
        )
    assert names[0] == "manifest.json"
    assert manifest["format"] == "wallet-backup" and manifest["version"] == 1
    assert {m["name"] for m in manifest["members"]} == set(names[1:])
    assert "signing_keys/audit.key.pem" in names
    assert "instance/audit-checkpoint.json" in names
    assert manifest["database"] == ("sqlite" if source.database.is_sqlite else "postgresql")
    assert all(len(m["sha256"]) == 64 for m in manifest["members"])

    checked = target.wallet.ok("restore", "--check", str(archive))
    assert "the archive is intact" in checked.stdout
    assert_nothing_restored(target)  # --check writes nothing
    restored = target.wallet.ok("restore", str(archive))
    secrets = [PASSPHRASE, SESSION_SECRET, *NAMES, *PLATES]
    outputs = (made.output, checked.output, restored.output)
    for output in (*outputs, json.dumps(manifest, ensure_ascii=False)):
        assert not [s for s in secrets if s in output], output
    assert PASSPHRASE.encode() not in raw  # the passphrase is nowhere in the archive


# -- refusals ---------------------------------------------------------------------------


def _rewrite(archive: Path, change: dict[str, bytes]) -> None:
    """Rewrite ``archive`` with some members' contents replaced, manifest kept."""
    with tarfile.open(archive) as tar:
        members = [(m, (tar.extractfile(m) or io.BytesIO()).read()) for m in tar.getmembers()]
    with tarfile.open(archive, "w:gz") as tar:
        for info, data in members:
            data = change.get(info.name, data)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_tampered_backup_archive_is_refused(source: Instance, target: Instance) -> None:
    archive = backup(source)
    checkpoint = "instance/audit-checkpoint.json"
    with tarfile.open(archive) as tar:
        document = json.loads((tar.extractfile(checkpoint) or io.BytesIO()).read())
    document["seq"] = 1  # an older checkpoint slipped in: a cut chain would pass
    _rewrite(archive, {checkpoint: json.dumps(document).encode()})
    result = target.wallet("restore", str(archive))
    assert result.exit_code == 1
    assert "is refused" in result.stderr and "does not match its checksum" in result.stderr
    assert "Nothing was restored" in result.stderr
    assert_nothing_restored(target)
    checked = target.wallet("restore", "--check", str(archive))  # the nightly check says so too
    assert checked.exit_code == 1 and "does not match its checksum" in checked.stderr

    # A flipped byte in the compressed stream: damaged.
    data = bytearray(backup(source).read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped = source.folder.parent / "flipped.tar.gz"
    flipped.write_bytes(bytes(data))
    result = target.wallet("restore", str(flipped))
    assert result.exit_code == 1 and "is refused" in result.stderr
    assert_nothing_restored(target)


def test_member_the_manifest_does_not_name_is_refused(source: Instance, target: Instance) -> None:
    archive = backup(source)
    with tarfile.open(archive) as tar:
        members = [(m, (tar.extractfile(m) or io.BytesIO()).read()) for m in tar.getmembers()]
    with tarfile.open(archive, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
        extra = tarfile.TarInfo("signing_keys/attacker.json")
        extra.size = 2
        tar.addfile(extra, io.BytesIO(b"{}"))
    result = target.wallet("restore", str(archive))
    assert result.exit_code == 1 and "its manifest does not" in result.stderr
    assert_nothing_restored(target)


def test_truncated_backup_archive_is_refused(source: Instance, target: Instance) -> None:
    archive = backup(source)
    data = archive.read_bytes()
    whole = gzip.decompress(data)
    for cut, label in ((len(data) // 2, "half"), (len(data) - 9, "trailer"), (40, "head")):
        truncated = source.folder.parent / f"cut-{label}.tar.gz"
        truncated.write_bytes(data[:cut])
        result = target.wallet("restore", str(truncated))
        assert result.exit_code == 1, label
        assert "is refused" in result.stderr and "Nothing was restored" in result.stderr, label
        assert "Traceback" not in result.output
        assert_nothing_restored(target)
    # Whole members but the end cut off, recompressed: a member is missing.
    short = source.folder.parent / "short.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        members = [(m, (tar.extractfile(m) or io.BytesIO()).read()) for m in tar.getmembers()]
    with tarfile.open(short, "w:gz") as tar:
        for info, content in members[:-1]:
            tar.addfile(info, io.BytesIO(content))
    result = target.wallet("restore", str(short))
    assert result.exit_code == 1 and "truncated" in result.stderr
    assert_nothing_restored(target)


def test_restore_over_a_populated_database_is_refused_without_force(
    source: Instance, tmp_path: Path
) -> None:
    archive = backup(source)
    before = tokens_and_states(source.database)
    later = issue(source.wallet, "library", card_number="300200300400", name="Nach Sicherung")
    source.wallet.ok("audit", "verify")  # the checkpoint outside moves past the archive's
    result = source.wallet("restore", str(archive))
    assert result.exit_code == 1
    assert "is not empty (7 passes" in result.stderr and "--force" in result.stderr
    assert "key files" in result.stderr and "Nothing was restored" in result.stderr
    assert later in tokens_and_states(source.database)  # untouched

    keys_before = tree(source.keys)
    forced = source.wallet.ok("restore", "--force", str(archive))
    assert "replacing (--force)" in forced.stderr
    source.database.dispose()  # its pooled connections still see the replaced SQLite file
    assert tokens_and_states(source.database) == before  # the pass issued later is gone
    aside = [p for p in source.keys.iterdir() if p.name.startswith("replaced-")]
    assert len(aside) == 1 and tree(aside[0]) == keys_before  # set aside, not deleted
    # The newer checkpoint outside is kept as evidence, and the restore says so in the log.
    (kept,) = [p for p in source.instance.iterdir() if p.name.startswith("replaced-")]
    assert (kept / "audit-checkpoint.json").is_file()
    entry = audit_entries(source.database)[-1]
    assert entry.action == "backup.restore" and entry.details["forced"] is True
    assert "replaced_checkpoint_seq" in entry.details
    assert "intact" in source.wallet.ok("audit", "verify").stdout


def test_restore_refuses_keys_this_passphrase_cannot_open(
    source: Instance, target: Instance
) -> None:
    archive = backup(source)
    result = target.wallet("restore", str(archive), WALLET_KEY_PASSPHRASE="not the passphrase!")
    assert result.exit_code == 1
    assert "do not open here" in result.stderr and "WALLET_KEY_PASSPHRASE" in result.stderr
    assert_nothing_restored(target)


def test_archive_from_older_code_is_restored_and_upgraded(
    source: Instance, target: Instance, db: Database
) -> None:
    """A backup taken before the newest migration: restore brings the schema up to date."""
    before = tokens_and_states(source.database)
    with db.engine.begin() as connection:  # the source as the previous release left it
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.downgrade(config, "-1")
    try:
        older = db.current_revision()
        assert older is not None and older != head_revision()
        archive = backup(source)
    finally:
        db.upgrade()  # PostgreSQL's test database is shared by the session's tests

    result = target.wallet.ok("restore", str(archive))
    assert f"upgraded the schema from {older} to {head_revision()}" in result.stdout
    assert target.database.current_revision() == head_revision()
    assert "intact" in target.wallet.ok("audit", "verify").stdout
    actions = [e.action for e in audit_entries(target.database)]
    assert actions[-2:] == ["db.upgrade", "backup.restore"]
    verifier = verifier_of(target)
    assert {s: verifier.check(t).state for s, (t, _) in before.items()} == {
        s: state for s, (_, state) in before.items()
    }


def test_backup_never_overwrites_an_archive(source: Instance) -> None:
    archive = source.folder.parent / "taken.tar.gz"
    archive.write_bytes(b"an older backup")
    result = source.wallet("backup", str(archive))
    assert result.exit_code == 1 and "exists already" in result.stderr
    assert archive.read_bytes() == b"an older backup"


@pytest.mark.skipif(not PG_URL, reason="WALLET_TEST_DATABASE_URL is not set")
def test_database_password_never_reaches_the_pg_dump_command_line(
    db: Database, source: Instance, target: Instance, tmp_path: Path
) -> None:
    if db.is_sqlite:
        pytest.skip("PostgreSQL only")
    password = "db-Pass:word\\4711"
    spy = tmp_path / "bin"
    spy.mkdir()
    calls = tmp_path / "calls.jsonl"
    for program in ("pg_dump", "pg_restore"):
        script = spy / program
        script.write_text(
            "#!/usr/bin/env python3\n"
            "import json, os, sys\n"
            f"open({str(calls)!r}, 'a').write(json.dumps({{'argv': sys.argv, "
            "'pgpassword': os.environ.get('PGPASSWORD'), "
            "'passfile': open(os.environ['PGPASSFILE']).read()}) + '\\n')\n"
            f"os.execv('/usr/bin/{program}', ['{program}', *sys.argv[1:]])\n"
        )
        script.chmod(0o700)
    path = f"{spy}{os.pathsep}{os.environ.get('PATH', '')}"
    with_password = make_url(db.url).set(password=password).render_as_string(hide_password=False)
    archive = tmp_path / "pw.tar.gz"
    made = source.wallet.ok("backup", str(archive), WALLET_DATABASE_URL=with_password, PATH=path)
    target_url = make_url(target.database.url).set(password=password)
    restored = target.wallet.ok(
        "restore",
        str(archive),
        WALLET_DATABASE_URL=target_url.render_as_string(hide_password=False),
        PATH=path,
    )
    recorded = [json.loads(line) for line in calls.read_text().splitlines()]
    assert [Path(r["argv"][0]).name for r in recorded] == ["pg_dump", "pg_restore"]
    for call in recorded:
        assert not [a for a in call["argv"] if "Pass" in a], call["argv"]
        assert call["pgpassword"] is None
        assert call["passfile"] == "*:*:*:*:db-Pass\\:word\\\\4711\n"
    assert not list(tmp_path.glob("**/.pgpass"))
    assert "db-Pass" not in made.output + restored.output


def test_missing_database_is_a_message_not_a_traceback(
    db: Database, source: Instance, tmp_path: Path
) -> None:
    archive = backup(source)
    if db.is_sqlite:
        missing = f"sqlite:///{tmp_path / 'nowhere' / 'wallet.sqlite3'}"
        result = source.wallet("backup", str(tmp_path / "x.tar.gz"), WALLET_DATABASE_URL=missing)
        assert result.exit_code == 1 and "there is no database" in result.stderr
        return
    absent = make_url(db.url).set(database=f"wallet_absent_{uuid.uuid4().hex[:8]}")
    url = absent.render_as_string(hide_password=False)
    for args in (("backup", str(tmp_path / "x.tar.gz")), ("restore", str(archive))):
        result = source.wallet(*args, WALLET_DATABASE_URL=url)
        assert result.exit_code == 1, args
        assert "cannot use the database" in result.stderr and "createdb" in result.stderr
    result = source.wallet("backup", str(tmp_path / "y.tar.gz"), PATH=str(tmp_path / "empty"))
    assert result.exit_code == 1 and "pg_dump is not installed" in result.stderr
    assert "postgresql-client" in result.stderr and not (tmp_path / "y.tar.gz").exists()


def test_backup_while_the_service_issues_is_one_consistent_snapshot(
    source: Instance, target: Instance
) -> None:
    """The service keeps issuing (and its worker sealing) during the backup: the archive
    is one moment, and its audit chain still verifies against its own checkpoint."""
    env = {k: v for k, v in source.wallet.env.items() if v is not None}
    services = Services.from_settings(Settings.from_env(env))
    key = services.audit_key
    checkpoint = services.audit_checkpoint_file
    stop = threading.Event()
    issued: list[str] = []

    def service() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with source.database.transaction(write=True) as session:
                made = passes.issue_pass(
                    session, services, type_id="library", actor="api:desk",
                    holder={"card_number": f"4{n:011d}", "name": "W\u00e4hrend"},
                    now=datetime.now(UTC),
                )  # fmt: skip
            issued.append(made.record.serial)
            if n % 5 == 0:  # the worker seals now and then, moving the checkpoint outside
                audit.seal_all(
                    lambda: source.database.transaction(write=True),
                    key=key, checkpoint_file=checkpoint, clock=lambda: datetime.now(UTC),
                )  # fmt: skip

    thread = threading.Thread(target=service)
    thread.start()
    try:
        while len(issued) < 5:
            time.sleep(0.01)
        started = len(issued)
        archive = backup(source)
        finished = len(issued)
    finally:
        stop.set()
        thread.join()
    assert finished > started  # the service really issued while the backup ran

    target.wallet.ok("restore", str(archive))
    assert "intact" in target.wallet.ok("audit", "verify").stdout
    restored = tokens_and_states(target.database)
    came_along = [serial for serial in issued if serial in restored]
    assert came_along == issued[: len(came_along)]  # a prefix: one moment, no gaps
    assert started <= len(came_along) <= finished
    verifier = verifier_of(target)
    verdicts = {serial: verifier.check(token).state for serial, (token, _) in restored.items()}
    assert verdicts == {serial: state for serial, (_, state) in restored.items()}


def test_archive_writing_outside_its_folders_is_refused(source: Instance, target: Instance) -> None:
    """Crafted archives: right hashes, a manifest naming a path out of the instance."""
    archive = backup(source)
    payload = b"written by an attacker\n"
    with tarfile.open(archive) as tar:
        members = [(m, (tar.extractfile(m) or io.BytesIO()).read()) for m in tar.getmembers()]
    names = ["instance/../../escape.txt", "/tmp/escape.txt", "signing_keys/a/../../x", "etc/x"]
    for name in names:
        manifest = json.loads(members[0][1])
        manifest["members"].append(
            {"name": name, "sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
        )
        crafted = source.folder.parent / "crafted.tar.gz"
        with tarfile.open(crafted, "w:gz") as tar:
            body = json.dumps(manifest).encode()
            first = tarfile.TarInfo("manifest.json")
            first.size = len(body)
            tar.addfile(first, io.BytesIO(body))
            for info, data in members[1:]:
                tar.addfile(info, io.BytesIO(data))
            extra = tarfile.TarInfo(name)
            extra.size = len(payload)
            tar.addfile(extra, io.BytesIO(payload))
        result = target.wallet("restore", str(crafted))
        assert result.exit_code == 1 and "a restore may not write" in result.stderr, name
        assert not (target.folder.parent / "escape.txt").exists()
        assert_nothing_restored(target)


def test_archive_with_a_link_instead_of_a_file_is_refused(
    source: Instance, target: Instance
) -> None:
    archive = backup(source)
    with tarfile.open(archive) as tar:
        members = [(m, (tar.extractfile(m) or io.BytesIO()).read()) for m in tar.getmembers()]
    with tarfile.open(archive, "w:gz") as tar:
        for info, data in members:
            if info.name == "signing_keys/audit.key.pem":
                link = tarfile.TarInfo(info.name)
                link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(link)
            else:
                tar.addfile(info, io.BytesIO(data))
    result = target.wallet("restore", str(archive))
    assert result.exit_code == 1 and "is refused" in result.stderr
    assert_nothing_restored(target)
