"""One archive holding everything an instance needs to come back on a fresh machine.

The archive (tar, gzip) holds a consistent snapshot of the database (PostgreSQL
in ``pg_dump``'s custom format, SQLite through its online backup API, so a
running service is fine), the key files as they are on disk (still encrypted:
the passphrase is never in the archive) and the files of the instance folder
(the audit checkpoint kept outside the database, the development secrets and
Apple chain, the wallet button images). ``manifest.json`` comes first and names
every member with its SHA-256, so a restore checks the whole archive before it
writes anything.

Order matters for the audit log: the instance files are copied before the
database is dumped, and the sealer writes its checkpoint file only after its
commit, so the archive's checkpoint never vouches for entries its database
lacks, and ``wallet audit verify`` after a restore says intact without
``wallet audit accept-restore``. The keys are copied after the dump: a key
made meanwhile is in the archive with every pass it signed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, func, inspect, select, text, update
from sqlalchemy import table as table_
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from wallet.auditkey import AUDIT_CHECKPOINT_FILE
from wallet.config import Settings
from wallet.errors import KeyPassphraseError, SigningKeyError, WalletError
from wallet.keystore import KeyStore
from wallet.services.audit import read_checkpoint_file

FORMAT = "wallet-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/wallet.sqlite3"
POSTGRES_MEMBER = "database/wallet.pgdump"
KEYS_PREFIX = "signing_keys/"
INSTANCE_PREFIX = "instance/"
_MANIFEST_LIMIT = 1 << 20
_CHUNK = 1 << 20
# What a restore may write, and where: nothing else in an archive is accepted.
_NAME_RE = re.compile(
    r"database/wallet\.(sqlite3|pgdump)|signing_keys/[^/]+|instance/[^/]+(/[^/]+)*"
)
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# The keys folder's own files, which come with the code, not with the instance.
_KEYS_FOLDER_FILES = frozenset({"README.md", ".gitignore"})
# Tables a restore reports by name when it would replace them (the rest by count).
_REPORTED_TABLES = {"passes": "passes", "audit_log": "audit entries", "staff_users": "staff users"}


class BackupError(WalletError):
    """A backup cannot be written or restored; the message says why and what to do."""

    code = "backup_failed"


class ArchiveError(BackupError):
    """The archive is damaged, truncated, tampered with or not a wallet backup."""

    code = "backup_archive_invalid"


class RestoreConflictError(BackupError):
    """A restore would replace a database, key files or instance files that exist."""

    code = "restore_would_overwrite"


class Progress(Protocol):
    """Where long work reports itself (the CLI draws a bar on stderr)."""

    def step(self, text: str, *, total: int = 0) -> None: ...

    def advance(self, amount: int) -> None: ...


class _Silent:
    def step(self, text: str, *, total: int = 0) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass


SILENT: Progress = _Silent()


@dataclass(frozen=True)
class Member:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What the archive holds; no secret, no address, no holder data."""

    created_at: datetime
    code_head: str  # the newest migration of the code that wrote the archive
    schema_revision: str  # the database's revision in the archive
    database: str  # "sqlite" or "postgresql"
    members: tuple[Member, ...]

    @property
    def database_member(self) -> str:
        return SQLITE_MEMBER if self.database == "sqlite" else POSTGRES_MEMBER

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "created_at": self.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "code_head": self.code_head,
            "schema_revision": self.schema_revision,
            "database": self.database,
            "members": [{"name": m.name, "sha256": m.sha256, "size": m.size} for m in self.members],
        }

    @classmethod
    def from_json(cls, data: object) -> Manifest:
        """:raises ArchiveError: naming what is wrong with the manifest."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArchiveError("it has no wallet backup manifest")
        if data.get("version") != FORMAT_VERSION:
            raise ArchiveError(
                f"its format version {data.get('version')!r} is not {FORMAT_VERSION}: "
                "restore it with the wallet version that wrote it"
            )
        try:
            created_at = datetime.fromisoformat(str(data["created_at"]).replace("Z", "+00:00"))
            members = tuple(
                Member(name=str(m["name"]), sha256=str(m["sha256"]), size=int(m["size"]))
                for m in data["members"]
            )
            manifest = cls(
                created_at=created_at,
                code_head=str(data["code_head"]),
                schema_revision=str(data["schema_revision"]),
                database=str(data["database"]),
                members=members,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(f"its manifest is malformed ({type(exc).__name__})") from exc
        if manifest.database not in ("sqlite", "postgresql") or created_at.tzinfo is None:
            raise ArchiveError("its manifest is malformed (database kind or time)")
        names = [m.name for m in members]
        for member in members:
            parts = member.name.split("/")
            if not _NAME_RE.fullmatch(member.name) or {".", ".."} & set(parts):
                raise ArchiveError(f"it names a file a restore may not write: {member.name!r}")
            if not _SHA256_RE.fullmatch(member.sha256) or member.size < 0:
                raise ArchiveError(f"its manifest entry for {member.name} is malformed")
        if len(set(names)) != len(names):
            raise ArchiveError("its manifest names a file twice")
        if manifest.database_member not in names:
            raise ArchiveError("it holds no database")
        return manifest


# -- backup -----------------------------------------------------------------------------


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(parsed.database)


def _database_files(database: Path | None) -> set[Path]:
    """The SQLite file and its companions: never copied as plain files."""
    if database is None:
        return set()
    base = database.resolve()
    return {base, *(Path(f"{base}{suffix}") for suffix in ("-wal", "-shm", "-journal", ".writers"))}


def _instance_files(folder: Path, database: Path | None) -> list[Path]:
    """Regular files of the instance folder, relative, without runtime state.

    Left out: the SQLite database (it is dumped instead), hidden files (locks,
    half-written temporary files), sockets and what earlier restores set aside.
    """
    if not folder.is_dir():
        return []
    skip = _database_files(database)
    found: list[Path] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if relative.parts[0].startswith("replaced-") or path.resolve() in skip:
            continue
        if path.is_file() and not path.is_symlink():
            found.append(relative)
    return found


def _key_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [
        Path(path.name)
        for path in sorted(folder.iterdir())
        if path.is_file()
        and not path.is_symlink()
        and not path.name.startswith(".")
        and path.name not in _KEYS_FOLDER_FILES
    ]


def _copy_tree(source: Path, names: list[Path], target: Path) -> None:
    for name in names:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, destination)


def _libpq_target(url: URL, staging: Path) -> tuple[str, dict[str, str]]:
    """The connection string without its password, and the environment that carries it.

    The password goes into a passfile (0600, in the private staging folder) that
    ``PGPASSFILE`` names: never on a command line, where ``ps`` shows it.
    """
    password = url.password
    plain = URL.create(  # (URL.set would keep the password: it ignores None)
        "postgresql",
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query=url.query,
    )
    extra: dict[str, str] = {}
    if password is not None:
        escaped = str(password).replace("\\", "\\\\").replace(":", "\\:")
        passfile = staging / ".pgpass"
        descriptor = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(f"*:*:*:*:{escaped}\n")
        extra["PGPASSFILE"] = str(passfile)
    return plain.render_as_string(hide_password=False), extra


def _run(argv: list[str], *, env: Mapping[str, str], what: str) -> None:
    try:
        completed = subprocess.run(  # noqa: S603 - a fixed program, arguments without secrets
            argv, env=dict(env), capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise BackupError(
            f"{argv[0]} is not installed: install PostgreSQL's client programs "
            "(Debian: apt-get install postgresql-client) at the server's major version or newer"
        ) from exc
    if completed.returncode != 0:
        lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit status {completed.returncode}"
        raise BackupError(f"{what} failed: {detail}")


def _child_env(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment for a libpq program, without a password of its own."""
    env = {k: v for k, v in base.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
    env.update(extra)
    return env


def _sqlite_snapshot(source: Path, target: Path, progress: Progress) -> str:
    """Copy a live SQLite database as one snapshot (the online backup API); its revision."""
    if not source.is_file():
        raise BackupError(f"there is no database at {source}: nothing to back up")
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        progress.step("copying the database (SQLite online backup)")
        # One step: stepwise, SQLite starts over whenever the service writes meanwhile
        # (and may never finish); one step reads one snapshot, and in WAL mode the
        # service's writers do not wait for it.
        src.backup(dst, pages=-1)
        row = _revision(dst)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the database {source}: {exc}") from exc
    finally:
        src.close()
        dst.close()
    if row is None:
        raise BackupError(f"the database {source} has no schema: nothing to back up")
    return row


def _revision(connection: sqlite3.Connection) -> str | None:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def _engine_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _tar_info(name: str, size: int, now: datetime) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(now.timestamp())
    return info


def create_backup(
    archive: Path,
    *,
    settings: Settings,
    engine: Engine | None,
    code_head: str,
    env: Mapping[str, str],
    now: datetime,
    progress: Progress = SILENT,
) -> Manifest:
    """Write the archive whole (a temporary file renamed into place), mode 0600.

    ``engine`` is the PostgreSQL database's (None for SQLite); ``env`` the
    environment ``pg_dump`` runs in (its password is passed in a passfile).

    :raises BackupError: the archive exists, or a part cannot be read.
    """
    if archive.exists():
        raise BackupError(f"{archive} exists already; choose another file name")
    if not archive.parent.is_dir():
        raise BackupError(f"the folder {archive.parent} does not exist")
    database = sqlite_path(settings.database)
    keys = _key_files(settings.signing_keys_dir)
    if not any(name.suffix == ".json" for name in keys):
        raise BackupError(
            f"there are no signing keys in {settings.signing_keys_dir} (WALLET_SIGNING_KEYS_DIR): "
            "a backup without them cannot bring back a single pass"
        )
    staging = Path(tempfile.mkdtemp(prefix=".wallet-backup-", dir=archive.parent))
    try:
        # 1. instance files (with the audit checkpoint) before the database: see above.
        progress.step("copying the instance files")
        files = _instance_files(settings.instance_dir, database)
        _copy_tree(settings.instance_dir, files, staging / INSTANCE_PREFIX)
        # 2. the database, in one snapshot.
        (staging / "database").mkdir()
        if database is not None:
            kind, member = "sqlite", SQLITE_MEMBER
            revision = _sqlite_snapshot(database, staging / member, progress)
        else:
            assert engine is not None, "PostgreSQL needs its engine"
            kind, member = "postgresql", POSTGRES_MEMBER
            found = _engine_revision(engine)
            if found is None:
                raise BackupError("the database has no schema: nothing to back up")
            revision = found
            progress.step("dumping the database (pg_dump)")
            target, extra = _libpq_target(engine.url, staging)
            _run(
                ["pg_dump", "--format=custom", f"--file={staging / member}", f"--dbname={target}"],
                env=_child_env(env, extra),
                what="pg_dump",
            )
            (staging / ".pgpass").unlink(missing_ok=True)
        # 3. the keys, after the dump: every key a dumped pass names is there.
        progress.step("copying the key files")
        keys = _key_files(settings.signing_keys_dir)
        _copy_tree(settings.signing_keys_dir, keys, staging / KEYS_PREFIX)
        names = [
            member,
            *(f"{KEYS_PREFIX}{name.as_posix()}" for name in keys),
            *(f"{INSTANCE_PREFIX}{name.as_posix()}" for name in files),
        ]
        members = tuple(
            Member(name=name, sha256=_sha256(staging / name), size=(staging / name).stat().st_size)
            for name in names
        )
        manifest = Manifest(
            created_at=now,
            code_head=code_head,
            schema_revision=revision,
            database=kind,
            members=members,
        )
        _write_archive(archive, staging, manifest, now=now, progress=progress)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_archive(
    archive: Path, staging: Path, manifest: Manifest, *, now: datetime, progress: Progress
) -> None:
    """Manifest first, then the members; synced, then linked into place (never replacing)."""
    fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            with tarfile.open(
                fileobj=handle, mode="w:gz", format=tarfile.PAX_FORMAT, compresslevel=6
            ) as tar:
                body = json.dumps(manifest.to_json(), indent=2).encode("utf-8") + b"\n"
                tar.addfile(_tar_info(MANIFEST, len(body), now), io.BytesIO(body))
                progress.step("writing the archive", total=sum(m.size for m in manifest.members))
                for member in manifest.members:
                    with (staging / member.name).open("rb") as source:
                        tar.addfile(_tar_info(member.name, member.size, now), source)
                    progress.advance(member.size)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, archive)
        except FileExistsError:
            raise BackupError(f"{archive} exists already; choose another file name") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


# -- restore ----------------------------------------------------------------------------


def _damaged(archive: Path, why: str) -> ArchiveError:
    return ArchiveError(f"{archive} is refused: {why}. Nothing was restored")


def read_archive(archive: Path, staging: Path, *, progress: Progress = SILENT) -> Manifest:
    """Unpack into ``staging`` only what the manifest names, each member's hash checked.

    :raises ArchiveError: damaged, truncated, tampered with, or not a wallet backup.
    """
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise _damaged(archive, "it is not a wallet backup (no manifest first)")
            if first.size > _MANIFEST_LIMIT:
                raise _damaged(archive, "its manifest is too large")
            raw = tar.extractfile(first)
            assert raw is not None
            try:
                manifest = Manifest.from_json(json.loads(raw.read().decode("utf-8")))
            except (ValueError, UnicodeDecodeError) as exc:
                raise _damaged(archive, "its manifest is not JSON") from exc
            except ArchiveError as exc:
                raise _damaged(archive, exc.message) from exc
            expected = {m.name: m for m in manifest.members}
            seen: set[str] = set()
            progress.step("checking the archive", total=sum(m.size for m in manifest.members))
            while (info := tar.next()) is not None:
                member = expected.get(info.name)
                if member is None or info.name in seen or not info.isfile():
                    raise _damaged(archive, f"it holds a file its manifest does not: {info.name!r}")
                seen.add(info.name)
                _unpack(tar, info, member, staging / info.name, archive)
                progress.advance(info.size)
            # Read to the end of the compressed stream: its checksum and length are
            # there, and an archive cut off after its last member is refused too.
            stream = tar.fileobj
            assert stream is not None
            while stream.read(_CHUNK):
                pass
    except ArchiveError:
        raise
    except FileNotFoundError as exc:
        raise BackupError(f"there is no archive {archive}") from exc
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _damaged(archive, f"it is damaged or truncated ({type(exc).__name__})") from exc
    missing = sorted(set(expected) - seen)
    if missing:
        raise _damaged(archive, f"it is truncated: {', '.join(missing[:5])} missing")
    return manifest


def _unpack(tar: tarfile.TarFile, info: tarfile.TarInfo, member: Member, target: Path,
            archive: Path) -> None:  # fmt: skip
    source = tar.extractfile(info)
    assert source is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with target.open("xb") as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != member.sha256 or info.size != member.size:
        raise _damaged(archive, f"{member.name} does not match its checksum (changed or damaged)")


@dataclass(frozen=True)
class Conflicts:
    """What a restore would replace on this machine."""

    database: dict[str, int]  # table (reported name) -> rows
    key_files: list[str]
    instance_files: list[str]

    def __bool__(self) -> bool:
        return bool(self.database or self.key_files or self.instance_files)

    def describe(self, *, database: str, keys_dir: Path, instance_dir: Path) -> str:
        parts = []
        if self.database:
            counts = ", ".join(f"{rows} {name}" for name, rows in self.database.items())
            parts.append(f"the database {database} is not empty ({counts})")
        if self.key_files:
            parts.append(f"{keys_dir} holds key files ({_short(self.key_files)})")
        if self.instance_files:
            parts.append(f"{instance_dir} holds {_short(self.instance_files)}")
        return "; ".join(parts)


def _short(names: list[str]) -> str:
    shown = ", ".join(names[:6])
    return shown + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _row_counts(engine: Engine) -> dict[str, int]:
    """Rows per non-empty table (the migrations' own table left out)."""
    counts: dict[str, int] = {}
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            if table == "alembic_version":
                continue
            rows = connection.execute(select(func.count()).select_from(table_(table))).scalar_one()
            if rows:
                counts[table] = int(rows)
    return counts


def _reported(counts: Mapping[str, int]) -> dict[str, int]:
    reported = {name: counts[table] for table, name in _REPORTED_TABLES.items() if table in counts}
    others = sum(rows for table, rows in counts.items() if table not in _REPORTED_TABLES)
    if others:
        reported["other rows"] = others
    return reported


@contextmanager
def _sqlite_engine(path: Path) -> Iterator[Engine | None]:
    """A look into an existing SQLite file (None when there is none: none is made)."""
    from sqlalchemy import create_engine

    if not path.is_file() or path.stat().st_size == 0:
        yield None
        return
    engine = create_engine(f"sqlite:///{path}")
    try:
        yield engine
    finally:
        engine.dispose()


def find_conflicts(
    manifest: Manifest, *, settings: Settings, engine: Engine | None, staging: Path
) -> Conflicts:
    """Rows in the target database, and key or instance files the archive would replace."""
    database = sqlite_path(settings.database)
    if database is not None:
        with _sqlite_engine(database) as existing:
            counts = _row_counts(existing) if existing is not None else {}
    else:
        assert engine is not None
        counts = _row_counts(engine)
    key_files = [name.as_posix() for name in _key_files(settings.signing_keys_dir)]
    instance_files = [
        name.as_posix()
        for name in _instance_files(settings.instance_dir, database)
        if not _same_file(settings.instance_dir / name, staging / INSTANCE_PREFIX / name.as_posix())
    ]
    return Conflicts(database=_reported(counts), key_files=key_files, instance_files=instance_files)


def _same_file(a: Path, b: Path) -> bool:
    return b.is_file() and a.read_bytes() == b.read_bytes()


def check_keys_open(staging: Path, *, passphrase: bytes | None, dev_mode: bool) -> None:
    """Refuse an archive whose keys this configuration cannot open (before writing anything).

    :raises KeyPassphraseError: naming what to set.
    """
    keys = KeyStore(staging / KEYS_PREFIX, passphrase=passphrase, dev_mode=dev_mode)
    try:
        if not keys.audit_key_path.is_file():
            raise SigningKeyError("it holds no audit key (audit.key.pem)")
        keys.audit_key()
        for key in keys.public_keys():
            if (staging / KEYS_PREFIX / f"{key.kid}.key.pem").is_file():
                keys.signing_key(key.kid)
    except SigningKeyError as exc:
        raise KeyPassphraseError(
            f"the archive's keys do not open here ({exc.message}): set WALLET_KEY_PASSPHRASE "
            "to the passphrase of the instance that made the backup. Nothing was restored"
        ) from exc


def _set_aside(folder: Path, names: list[str], stamp: str) -> Path | None:
    """Move files a forced restore replaces into ``replaced-<time>/``: nothing is deleted."""
    if not names:
        return None
    aside = folder / f"replaced-{stamp}"
    for name in names:
        target = aside / name
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.replace(folder / name, target)
    return aside


def _install(source: Path, target: Path) -> None:
    """Copy a file into place whole (temporary file, sync, rename), mode 0600."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out, source.open("rb") as handle:
            shutil.copyfileobj(handle, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _drop_everything(engine: Engine) -> None:
    """Empty the target PostgreSQL schema (tables, sequences) in one transaction."""
    with engine.begin() as connection:
        inspector = inspect(connection)
        for table in inspector.get_table_names():
            connection.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
        for sequence in inspector.get_sequence_names():
            connection.execute(text(f'DROP SEQUENCE IF EXISTS "{sequence}" CASCADE'))


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    keys_set_aside: Path | None
    instance_set_aside: Path | None
    replaced_checkpoint: object | None  # the checkpoint document a forced restore set aside


def restore_backup(
    manifest: Manifest,
    staging: Path,
    *,
    settings: Settings,
    engine: Engine | None,
    conflicts: Conflicts,
    env: Mapping[str, str],
    now: datetime,
    progress: Progress = SILENT,
) -> Restored:
    """Put a checked archive's database, keys and instance files in place.

    The database comes first (the step most likely to fail); files the archive
    replaces are moved into ``replaced-<time>/`` beside them, never deleted.
    The caller has refused ``conflicts`` unless the admin forced the restore.
    """
    check_restorable(manifest, settings=settings)
    database = sqlite_path(settings.database)
    progress.step("restoring the database")
    if database is not None:
        for suffix in ("-wal", "-shm", "-journal"):  # a stale WAL would be replayed into it
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        _install(staging / SQLITE_MEMBER, database)
    else:
        assert engine is not None
        _drop_everything(engine)
        dbname, extra = _libpq_target(engine.url, staging)
        _run(
            [
                "pg_restore", "--no-owner", "--no-acl", "--single-transaction",
                "--exit-on-error", f"--dbname={dbname}", str(staging / POSTGRES_MEMBER),
            ],
            env=_child_env(env, extra),
            what="pg_restore",
        )  # fmt: skip
    stamp = f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    progress.step("restoring the key and instance files")
    checkpoint = settings.instance_dir / AUDIT_CHECKPOINT_FILE
    replaced_checkpoint = (
        read_checkpoint_file(checkpoint) if AUDIT_CHECKPOINT_FILE in conflicts.instance_files
        else None
    )  # fmt: skip
    keys_aside = _set_aside(settings.signing_keys_dir, conflicts.key_files, stamp)
    instance_aside = _set_aside(settings.instance_dir, conflicts.instance_files, stamp)
    settings.instance_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for member in manifest.members:
        if member.name.startswith(KEYS_PREFIX):
            target = settings.signing_keys_dir / member.name.removeprefix(KEYS_PREFIX)
        elif member.name.startswith(INSTANCE_PREFIX):
            target = settings.instance_dir / member.name.removeprefix(INSTANCE_PREFIX)
        else:
            continue
        _install(staging / member.name, target)
    return Restored(
        manifest=manifest,
        keys_set_aside=keys_aside,
        instance_set_aside=instance_aside,
        replaced_checkpoint=replaced_checkpoint,
    )


def check_restorable(manifest: Manifest, *, settings: Settings) -> None:
    """Refuse an archive of another database kind, or one from newer code.

    :raises BackupError: saying what to configure or install.
    """
    kind = "sqlite" if sqlite_path(settings.database) is not None else "postgresql"
    if manifest.database != kind:
        raise BackupError(
            f"the archive holds a {manifest.database} database, but WALLET_DATABASE_URL names "
            f"a {kind} one: configure a {manifest.database} database. Nothing was restored"
        )
    if manifest.schema_revision not in known_revisions():
        raise BackupError(
            f"the archive's database is at revision {manifest.schema_revision}, which this "
            "wallet does not know: it comes from newer code. Install that version (or a "
            "newer one) to restore it. Nothing was restored"
        )


def known_revisions() -> set[str]:
    """Every migration this code has (a restore refuses a schema from newer code)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from wallet.store.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def close_status_lists(session: Session) -> int:
    """Issue no more passes into the restored status lists; the number of lists closed.

    Passes issued after the backup are not in the archive, but their tokens
    name an index of the list that was open then: a new pass drawing that index
    would share its status bit. New passes therefore go into new lists.
    """
    from wallet.store.models import StatusListRow

    result = session.execute(
        update(StatusListRow)
        .where(StatusListRow.used < StatusListRow.size)
        .values(used=StatusListRow.size)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def identity_differences(session: Session, settings: Settings) -> list[str]:
    """Where this environment's issuer or public URL differs from the restored instance's."""
    from wallet.services.instance import identity
    from wallet.store.models import InstanceSettingRow

    stored = dict(session.execute(select(InstanceSettingRow.name, InstanceSettingRow.value)).all())
    names = {"public_url": "WALLET_PUBLIC_URL", "issuer": "WALLET_ISSUER"}
    return [
        f"{names[name]} is {value} here, but the restored instance signs for {stored[name]}"
        for name, value in identity(settings).items()
        if name in stored and stored[name] != value
    ]
