"""``wallet backup`` and ``wallet restore``: the whole instance in one archive, and back.

What the archive holds and in which order it is taken: see
:mod:`wallet.services.backup`. The passphrase of the keys is never in it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import click
from sqlalchemy.exc import DBAPIError

from wallet.cli.context import (
    Context,
    DatabaseError,
    actor_option,
    describe_db_error,
    pass_context,
)
from wallet.services import audit
from wallet.services import backup as service
from wallet.store.db import head_revision


class _Progress:
    """One line per step on stderr; a bar for the steps that know their size."""

    def __init__(self) -> None:
        self._bar: Any = None

    def step(self, text: str, *, total: int = 0) -> None:
        self.close()
        if total:
            self._bar = click.progressbar(
                length=total, label=text, file=sys.stderr, show_percent=True, show_eta=True
            )
            self._bar.__enter__()
        else:
            click.echo(f"{text} …", err=True)

    def advance(self, amount: int) -> None:
        if self._bar is not None:
            self._bar.update(amount)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def __enter__(self) -> _Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextmanager
def _database_errors(obj: Context) -> Iterator[None]:
    """The database unreachable or refusing: a message saying what to check, no traceback."""
    try:
        yield
    except DBAPIError as exc:
        raise DatabaseError(
            f"cannot use the database {obj.database_label()}: {describe_db_error(exc)}; check "
            "WALLET_DATABASE_URL, that the server runs and that the database exists (createdb)"
        ) from exc


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


@click.command()
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@pass_context
def backup(obj: Context, archive: Path) -> None:
    """Write the database, the encrypted key files and the instance files into ARCHIVE.

    A consistent snapshot while the service runs. The archive (mode 0600) holds
    holder data: keep it like the database. The key passphrase is not in it.
    """
    settings = obj.settings
    engine = None if service.sqlite_path(settings.database) else obj.db.engine
    with _Progress() as progress, _database_errors(obj):
        manifest = service.create_backup(
            archive,
            settings=settings,
            engine=engine,
            code_head=head_revision(),
            env=os.environ,
            now=obj.now(),
            progress=progress,
        )
    keys = sum(m.name.startswith(service.KEYS_PREFIX) for m in manifest.members)
    files = sum(m.name.startswith(service.INSTANCE_PREFIX) for m in manifest.members)
    click.echo(
        f"backup written: {archive} ({_size(archive.stat().st_size)}; {manifest.database} "
        f"database at revision {manifest.schema_revision}, {keys} key files, {files} instance "
        "files)"
    )
    click.echo(
        "It holds holder data and the encrypted keys, not WALLET_KEY_PASSPHRASE: keep it "
        "off this machine, and the passphrase apart from it."
    )


@click.command()
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Replace a database that holds rows and existing key or instance files.",
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Only check the archive (every checksum) and say what it holds; write nothing.",
)
@actor_option
@pass_context
def restore(obj: Context, archive: Path, force: bool, check_only: bool) -> None:
    """Bring back an instance from ARCHIVE (made by `wallet backup`) on this machine.

    The whole archive is checked before anything is written. A database with
    rows, key files or instance files are replaced only with --force (the files
    are kept in replaced-<time>/). A schema from older code is upgraded.
    """
    settings = obj.settings
    is_sqlite = service.sqlite_path(settings.database) is not None
    with tempfile.TemporaryDirectory(prefix="wallet-restore-") as folder, _Progress() as progress:
        staging = Path(folder)
        manifest = service.read_archive(archive, staging, progress=progress)
        progress.close()
        if check_only:
            _describe(manifest)
            return
        service.check_restorable(manifest, settings=settings)
        service.check_keys_open(
            staging, passphrase=settings.key_passphrase, dev_mode=settings.dev_mode
        )
        engine = None if is_sqlite else obj.db.engine
        with _database_errors(obj):
            conflicts = service.find_conflicts(
                manifest, settings=settings, engine=engine, staging=staging
            )
        where = "SQLite" if is_sqlite else obj.database_label()
        described = conflicts.describe(
            database=where, keys_dir=settings.signing_keys_dir, instance_dir=settings.instance_dir
        )
        if conflicts and not force:
            raise service.RestoreConflictError(
                f"{described}. Nothing was restored. To replace them with the archive's, run "
                "again with --force: the database's rows are then lost, the files are moved "
                "to replaced-<time>/ beside them"
            )
        if conflicts:
            click.echo(f"replacing (--force): {described}", err=True)
        with _database_errors(obj):
            restored = service.restore_backup(
                manifest,
                staging,
                settings=settings,
                engine=engine,
                conflicts=conflicts,
                env=os.environ,
                now=obj.now(),
                progress=progress,
            )
    _after_restore(obj, restored, force=bool(conflicts))


def _describe(manifest: service.Manifest) -> None:
    keys = sum(m.name.startswith(service.KEYS_PREFIX) for m in manifest.members)
    files = sum(m.name.startswith(service.INSTANCE_PREFIX) for m in manifest.members)
    size = sum(m.size for m in manifest.members)
    click.echo(
        f"the archive is intact: backup of {manifest.to_json()['created_at']}, "
        f"{manifest.database} database at revision {manifest.schema_revision}, {keys} key "
        f"files, {files} instance files, {_size(size)} unpacked"
    )


def _after_restore(obj: Context, restored: service.Restored, *, force: bool) -> None:
    """Upgrade an older schema, record the restore in the audit log, say what comes next."""
    from wallet.cli.db import upgrade_database

    manifest = restored.manifest
    upgraded = upgrade_database(obj)  # an archive from older code gets this code's schema
    details: dict[str, object] = {
        "archive_created_at": manifest.to_json()["created_at"],
        "schema_revision": manifest.schema_revision,
        "forced": force,
    }
    replaced = restored.replaced_checkpoint
    if isinstance(replaced, dict):
        details["replaced_checkpoint_seq"] = replaced.get("seq")
        details["replaced_checkpoint_head"] = replaced.get("head")
    with obj.transaction(write=True) as session:
        details["closed_status_lists"] = service.close_status_lists(session)
        audit.record(
            session,
            key=obj.services.audit_key,
            actor=obj.actor,
            action="backup.restore",
            details=details,
            now=obj.now(),
        )
        differences = service.identity_differences(session, obj.settings)
    click.echo(
        f"restored the backup of {manifest.to_json()['created_at']} into "
        f"{obj.database_label()} ({len(manifest.members)} files checked)"
    )
    click.echo(
        "new passes go into new status lists: passes issued after the backup are not in it, "
        "and no new pass may share their status bits"
    )
    if upgraded.changed:
        click.echo(f"upgraded the schema from {upgraded.before} to {upgraded.after}")
    for aside in (restored.keys_set_aside, restored.instance_set_aside):
        if aside is not None:
            click.echo(f"the files it replaced are kept in {aside}")
    for difference in differences:
        click.echo(f"warning: {difference}; set the same values before starting", err=True)
    click.echo(
        "next:\n"
        "  wallet audit verify      # must say: the audit chain is intact\n"
        "  wallet db current        # the schema this code needs\n"
        "  wallet doctor            # keys, pass types, outbox\n"
        "then start the service and the worker. Other hosts of this instance keep a newer\n"
        "audit checkpoint: copy this host's audit-checkpoint.json to them, or run\n"
        "`wallet audit accept-restore` there."
    )
