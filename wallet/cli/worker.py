"""``wallet worker``: deliver wallet pushes from the outbox and seal the audit log.

Runs beside the web workers (``scripts/serve`` starts one). Several may run at
once, on several hosts: on PostgreSQL they claim outbox rows with SKIP LOCKED,
and the audit sealer takes its own lock. Stop it with SIGTERM or Ctrl-C; it
finishes the delivery in hand first.

It logs JSON lines on stderr, as the web server does (``wallet.logs``). With
``WALLET_METRICS_BIND`` set, its delivery counters go into the instance's metric
folder, which the web server's metrics listener on the same host reads.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType

import click
from sqlalchemy.exc import SQLAlchemyError

from wallet import logs
from wallet.cli.context import Context, pass_context
from wallet.errors import ConfigError
from wallet.services import (
    apple,
    audit,
    claim_mail,
    health,
    metrics,
    outbox,
    plate_checks,
    reminders,
    renewals,
    wallets,
)
from wallet.services.context import Services

log = logging.getLogger("wallet.worker")


def build_deliverers(services: Services, stack: ExitStack) -> outbox.Deliverers:
    """Clients for every platform that is set up; the others' rows wait (and say why)."""
    settings = services.settings
    apns = None
    try:
        services.formats.apple  # noqa: B018 - Apple set up (real or development chain)?
        apns = stack.enter_context(wallets.apns_client(services))
    except ConfigError as exc:
        log.warning("Apple Wallet pushes are off: %s", exc.message)
    google = None
    if settings.google_enabled:
        google = stack.enter_context(wallets.google_client(services))
    else:
        log.warning("Google Wallet updates are off: WALLET_GOOGLE_* is not set")
    mail = None
    try:
        mail = claim_mail.mail_sender(services)
    except ConfigError as exc:
        log.warning("E-mail to holders is off: %s", exc.message)
    return outbox.Deliverers(
        apns=apns,
        apple_topic=settings.apple_pass_type_id,
        google=google,
        services=services,
        mail=mail,
    )


@click.command()
@click.option("--once", is_flag=True, help="One round (seal, deliver what is due), then exit.")
@click.option(
    "--interval",
    type=click.FloatRange(0.05, 60),
    default=0.5,
    show_default=True,
    help="Seconds between rounds when there is nothing to do.",
)
@pass_context
def worker(obj: Context, once: bool, interval: float) -> None:
    """Deliver Apple Wallet pushes and Google Wallet updates; seal the audit log."""
    logs.configure()
    if obj.settings.metrics_bind:
        metrics.use_directory(obj.settings.metrics_dir)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    with ExitStack() as stack:
        if not once:  # (--once runs inside other programs, tests among them: left alone)
            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            if obj.db.is_sqlite:  # started first: it keeps the normal priority
                stack.enter_context(_checkpoints(obj, stop))
            os.nice(NICENESS)  # on Linux, for this thread (and those it starts) only
        deliverers = build_deliverers(obj.services, stack)
        obj.services.audit_key  # noqa: B018 - fail at start: no audit key, wrong passphrase
        metrics.declare(obj.services.pass_types)
        if not once:
            log.info("worker: running, database %s", obj.database_label())
        next_prune = next_reminders = next_beat = obj.now()
        alarms = _Alarms()
        name = health.worker_name()
        while not stop.is_set():
            if obj.now() >= next_reminders:
                _remind(obj)
                _retire_renewed(obj)
                next_reminders = obj.now() + REMIND_EVERY
            busy = _round(obj, deliverers, alarms)
            if obj.now() >= next_beat:
                _beat(obj, name)
                next_beat = obj.now() + health.BEAT_EVERY
            if obj.now() >= next_prune:
                _prune(obj)
                next_prune = obj.now() + PRUNE_EVERY
            if once:
                _checkpoint(obj)
                return
            if not busy:
                stop.wait(interval)


PRUNE_EVERY = timedelta(hours=1)
# SQLite's write-ahead log grows by ~12 pages per issuance: at 700 issuances a
# second it passed the backstop mark (wallet.store.db) between two checkpoints a
# second apart, and a request's commit copied it back, 80-100 ms with every writer
# queued behind. A quarter second keeps it far below, and each copy short.
CHECKPOINT_SECONDS = 0.25
# SQLite has one writer at a time: a sealing transaction of thousands of entries
# held up every issuance behind it. Small batches let requests in between.
SEAL_BATCH_SQLITE = 200
SEAL_BATCH = 5000  # SQLite's WAL, copied back outside requests
REMIND_EVERY = timedelta(minutes=15)  # a reminder is at most this late
# A round can wait a few milliseconds; a request at a desk or a citizen's cannot.
# Where web workers share the machine, the kernel gives them the CPU first. Measured
# on 2 busy cores: p99 at 16 clients 52-62 ms with, 65-76 ms without.
NICENESS = 10


@contextmanager
def _checkpoints(obj: Context, stop: threading.Event) -> Iterator[None]:
    """Checkpoint SQLite's log in a thread of its own, on a clock of its own.

    Not a step of the round: a round that delivers or seals for a while would
    let the log run long. The thread keeps the normal priority (niceness is per
    thread on Linux and it is started before the worker lowers its own): the
    checkpoint's last step holds the writer queue, which requests wait on, and
    at a low priority on busy cores it would hold it for tens of milliseconds.
    """
    done = threading.Event()

    def run() -> None:
        while not (stop.wait(CHECKPOINT_SECONDS) or done.is_set()):
            _checkpoint(obj)

    thread = threading.Thread(target=run, name="wal-checkpoint", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _checkpoint(obj: Context) -> None:
    """SQLite: copy the write-ahead log into the database here, not in a request's commit."""
    try:
        obj.db.checkpoint()
    # The checkpoint runs on the driver's connection (sqlite3's errors) and takes the
    # writer queue's file lock (OSError).
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        log.error("database checkpoint failed, retrying: %s", type(exc).__name__)


def _beat(obj: Context, name: str) -> None:
    """Tell /readyz that a worker is alive: it finished a round."""
    try:
        with obj.transaction(write=True) as session:
            health.beat(session, name, now=obj.now())
    except SQLAlchemyError as exc:
        log.error("heartbeat failed, retrying later: %s", type(exc).__name__)


def _remind(obj: Context) -> None:
    """Queue the renewal reminders that are due (the outbox then sends them)."""
    try:
        with obj.transaction(write=True) as session:
            queued = reminders.queue_due(session, obj.services, now=obj.now())
    except SQLAlchemyError as exc:
        log.error("reminders failed, retrying later: %s", type(exc).__name__)
        return
    if queued:
        log.info("queued %d renewal reminders", queued)


def _retire_renewed(obj: Context) -> None:
    """Revoke renewed passes whose grace period is over (batch by batch)."""
    retired = 0
    try:
        while True:
            with obj.transaction(write=True) as session:
                done = renewals.retire_due(session, obj.services, now=obj.now())
            retired += done
            if done < renewals.SWEEP_BATCH:
                break
    except SQLAlchemyError as exc:
        log.error("retiring renewed passes failed, retrying later: %s", type(exc).__name__)
    if retired:
        log.info("revoked %d renewed passes after their grace period", retired)


def _prune(obj: Context) -> None:
    """Old finished deliveries, device logs and plate lookup counts go (outbox.KEEP_*,
    plate_checks.KEEP_COUNTS)."""
    try:
        with obj.transaction(write=True) as session:
            removed = outbox.prune(session, now=obj.now())
            removed += apple.prune_logs(session, now=obj.now())
            removed += plate_checks.prune_counts(session, now=obj.now())
    except SQLAlchemyError as exc:
        log.error("pruning failed, retrying later: %s", type(exc).__name__)
        return
    if removed:
        log.info("pruned %d old outbox rows and device logs", removed)


@dataclass
class _Alarms:
    """What the last rounds reported about the audit log: the same alarm is logged once
    while it lasts (every half second would drown everything else in the log)."""

    tampering: str = ""
    refused: tuple[int, ...] = ()


def _seal(obj: Context, alarms: _Alarms) -> int:
    """Seal the audit log; tampering stops sealing (and is logged), never pushes."""
    try:
        report = audit.seal_all(
            lambda: obj.transaction(write=True),
            read_factory=lambda: obj.transaction(write=False),
            key=obj.services.audit_key,
            checkpoint_file=obj.services.audit_checkpoint_file,
            clock=obj.now,
            batch=SEAL_BATCH_SQLITE if obj.db.is_sqlite else SEAL_BATCH,
        )
    except audit.AuditTamperedError as exc:
        if exc.message != alarms.tampering:
            log.error("audit log not sealed (%s): %s", exc.kind, exc.message)
            alarms.tampering = exc.message
        return 0
    except SQLAlchemyError as exc:
        log.error("audit sealing failed, retrying: %s", type(exc).__name__)
        return 0
    except Exception:  # never let sealing stop pushes for good
        log.exception("audit sealing failed unexpectedly, retrying")
        return 0
    alarms.tampering = ""
    if report.refused and report.refused != alarms.refused:
        log.error(
            "audit entries %s were refused: not written by the service (forged or changed); "
            "`wallet audit verify` names them",
            ", ".join(str(i) for i in report.refused[:20]),
        )
    alarms.refused = report.refused
    if report.sealed and report.checkpoint is not None:
        # A copy of each checkpoint in the log (syslog/journal) is one more outside witness.
        log.info(
            "sealed %d audit entries; checkpoint seq=%s head=%s",
            report.sealed,
            report.checkpoint["seq"],
            report.checkpoint["head"],
        )
    return report.sealed


def _round(obj: Context, deliverers: outbox.Deliverers, alarms: _Alarms) -> bool:
    """One round; True if there may be more to do right away."""
    _seal(obj, alarms)
    try:
        report = outbox.drain(
            lambda: obj.transaction(write=True), deliverers, clock=obj.now, limit=100
        )
    except SQLAlchemyError as exc:  # the database is away: say so, try again later
        log.error("worker round failed, retrying: %s", type(exc).__name__)
        return False
    except Exception:  # never let one bad round stop pushes for good
        log.exception("worker round failed unexpectedly, retrying")
        return False
    if report.handled:
        log.info(
            "outbox: %d delivered, %d to retry, %d failed",
            report.delivered,
            report.retried,
            report.failed,
        )
    return report.handled >= 100
