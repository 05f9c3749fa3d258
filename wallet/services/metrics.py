"""Prometheus metrics: every definition in this one module (issue 12, section 3).

Counters and the request histogram are written by the process where the thing
happens (a gunicorn worker, ``wallet worker``). With ``WALLET_METRICS_BIND`` set
they write into the instance's metric folder (prometheus-client's multiprocess
mode, :func:`use_directory`), which the gunicorn master reads when Prometheus
scrapes its metrics listener (``wallet.web.metrics``). What lives in the
database (outbox backlog, the age of the published status lists and bundle,
readiness) is read at scrape time by :class:`DatabaseCollector`, so it is right
whichever process sent or published what.

Labels hold nothing about people and take few values: pass types (the
templates folder), outbox channels, HTTP method, route templates (never a
path: paths hold claim secrets) and status classes.

A pass counter counts when the transaction commits (:func:`count_pass`), not
when the service flushes: a refused or rolled-back change is not counted.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import event, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from wallet.services import health
from wallet.services.context import Services
from wallet.store.db import Database
from wallet.store.models import OutboxRow, PublishedBundleRow, StatusListRow, WorkerHeartbeatRow

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own name for it

REQUEST_SECONDS = Histogram(
    "wallet_http_request_duration_seconds",
    "Time the app took to answer, by route template, method and status class.",
    ["route", "method", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PASSES_ISSUED = Counter("wallet_passes_issued", "Passes issued (renewals included).", ["pass_type"])
PASSES_REVOKED = Counter("wallet_passes_revoked", "Passes revoked.", ["pass_type"])
PASSES_SUSPENDED = Counter("wallet_passes_suspended", "Passes suspended.", ["pass_type"])
PASSES_REINSTATED = Counter("wallet_passes_reinstated", "Passes reinstated.", ["pass_type"])
PASSES_REISSUED = Counter(
    "wallet_passes_reissued", "Passes reissued (the old one counts as revoked).", ["pass_type"]
)
DELIVERY_FAILURES = Counter(
    "wallet_delivery_failures",
    "Outbox deliveries that failed: outcome 'retry' (tried again later) or 'failed' (for good).",
    ["channel", "outcome"],
)
LOGIN_FAILURES = Counter(
    "wallet_login_failures", "Failed staff sign-ins, by way of signing in.", ["provider"]
)

_PASS_COUNTERS = {
    "issued": PASSES_ISSUED,
    "revoke": PASSES_REVOKED,
    "suspend": PASSES_SUSPENDED,
    "reinstate": PASSES_REINSTATED,
    "reissued": PASSES_REISSUED,
}
CHANNELS = ("apns", "google_state", "email")  # wallet.services.outbox's kinds
DELIVERY_OUTCOMES = ("retry", "failed")
LOGIN_PROVIDERS = ("local", "oidc")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PENDING = "wallet.metrics.pending"


def use_directory(directory: Path) -> None:
    """Write this process's metrics into ``directory`` (multiprocess mode).

    Call it at start, before any metric is counted; processes forked later (gunicorn's
    workers) inherit it. prometheus-client picks its mode when first imported, which
    may have happened before the directory was known, so the mode is set here too.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def remove_dead_files(directory: Path) -> int:
    """Forget the metric files of processes that are no longer running (an earlier run).

    A ``wallet worker`` started a moment before the web server keeps its files. Returns
    how many files went.
    """
    removed = 0
    for path in directory.glob("*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _running(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_ended(pid: int) -> None:
    """gunicorn's ``child_exit``: a worker's live gauges go; its counters stay in the sums."""
    from prometheus_client import multiprocess

    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def declare(pass_types: Iterable[str]) -> None:
    """Every counter's series at 0, so rates and alerts work before the first event."""
    for type_id in pass_types:
        for counter in _PASS_COUNTERS.values():
            counter.labels(type_id)
    for channel in CHANNELS:
        for outcome in DELIVERY_OUTCOMES:
            DELIVERY_FAILURES.labels(channel, outcome)
    for provider in LOGIN_PROVIDERS:
        LOGIN_FAILURES.labels(provider)


def count_pass(session: Session, change: str, pass_type: str) -> None:
    """Count a pass change ("issued", "revoke", "suspend", "reinstate", "reissued") once
    ``session``'s transaction commits; a rollback forgets it."""
    session.info.setdefault(_PENDING, []).append((_PASS_COUNTERS[change], pass_type))


@event.listens_for(Session, "after_commit")
def _counted_on_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint: the outer transaction may still fail
        return
    for counter, label in session.info.pop(_PENDING, ()):
        counter.labels(label).inc()


@event.listens_for(Session, "after_rollback")
def _forgotten_on_rollback(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_PENDING, None)


def delivery_failed(channel: str, *, retry: bool) -> None:
    """An outbox delivery did not go through (the row records why)."""
    DELIVERY_FAILURES.labels(
        channel if channel in CHANNELS else "other", "retry" if retry else "failed"
    ).inc()


def login_failed(provider: str = "local") -> None:
    """A staff sign-in was refused (wrong password, unknown or disabled account, ...)."""
    LOGIN_FAILURES.labels(provider).inc()


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """One answered request. ``route`` is the template (``/p/<secret>``), never the path."""
    REQUEST_SECONDS.labels(
        route, method if method in _METHODS else "other", f"{status // 100}xx"
    ).observe(seconds)


class DatabaseCollector:
    """What the database knows, read when Prometheus scrapes (in the gunicorn master).

    Connections are closed after each scrape: the master forks workers, and a pooled
    connection inherited by a child could be closed from there.
    """

    def __init__(self, db: Database, services: Services, *, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._services = services
        self._clock = clock
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            try:
                yield from self._collect(self._clock())
            finally:
                self._db.dispose()

    def _collect(self, now: datetime) -> Iterator[Metric]:
        settings = self._services.settings
        yield _gauge("wallet_status_list_lifetime_seconds",
                     "WALLET_STATUS_LIST_LIFETIME: a list is re-signed after half of it.",
                     settings.status_list_lifetime)  # fmt: skip
        yield _gauge("wallet_trust_bundle_lifetime_seconds",
                     "WALLET_BUNDLE_LIFETIME: the bundle is re-signed after half of it.",
                     settings.bundle_lifetime)  # fmt: skip
        readiness = health.readiness(self._db, self._services, now=now)
        yield _gauge("wallet_ready", "1 when /readyz would answer 200.", int(readiness.ready))
        checks = GaugeMetricFamily(
            "wallet_readiness_check", "Each /readyz check: 1 ok, 0 failing.", labels=["check"]
        )
        for name, result in sorted(readiness.checks.items()):
            checks.add_metric([name], int(result == "ok"))
        yield checks
        try:
            with self._db.transaction(write=False) as session:
                found = _database_figures(session, now)
        except SQLAlchemyError:
            return  # wallet_readiness_check{check="database"} already says so
        yield from found


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _database_figures(session: Session, now: datetime) -> list[Metric]:
    backlog = GaugeMetricFamily(
        "wallet_outbox_backlog", "Deliveries due now and not yet delivered.", labels=["channel"]
    )
    oldest = GaugeMetricFamily(
        "wallet_outbox_oldest_due_age_seconds",
        "How long the longest-waiting due delivery has been due (0: none due).",
        labels=["channel"],
    )
    due: dict[str, tuple[int, datetime | None]] = {
        str(kind): (int(count), first)
        for kind, count, first in session.execute(
            select(OutboxRow.kind, func.count(), func.min(OutboxRow.next_attempt_at))
            .where(OutboxRow.state == "pending", OutboxRow.next_attempt_at <= now)
            .group_by(OutboxRow.kind)
        ).all()
    }
    for channel in CHANNELS:
        count, first = due.get(channel, (0, None))
        backlog.add_metric([channel], count)
        oldest.add_metric([channel], _age(now, first))
    lists = GaugeMetricFamily(
        "wallet_status_list_age_seconds",
        "Seconds since the oldest published status list of a pass type was signed.",
        labels=["pass_type"],
    )
    for pass_type, signed in session.execute(
        select(StatusListRow.pass_type, func.min(StatusListRow.published_at))
        .where(StatusListRow.published_at.is_not(None))
        .group_by(StatusListRow.pass_type)
    ).all():
        lists.add_metric([str(pass_type)], _age(now, signed))
    figures: list[Metric] = [backlog, oldest, lists]
    bundle = session.scalar(select(PublishedBundleRow.issued_at).where(PublishedBundleRow.id == 1))
    if bundle is not None:
        figures.append(
            _gauge("wallet_trust_bundle_age_seconds",
                   "Seconds since the published trust bundle was signed.", _age(now, bundle))
        )  # fmt: skip
    beat = session.scalar(select(func.max(WorkerHeartbeatRow.beat_at)))
    if beat is not None:
        figures.append(
            _gauge("wallet_worker_heartbeat_age_seconds",
                   "Seconds since an outbox worker last finished a round.", _age(now, beat))
        )  # fmt: skip
    return figures


def _age(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:  # SQLite hands back naive UTC
        then = then.replace(tzinfo=now.tzinfo)
    return max((now - then).total_seconds(), 0.0)


def exposition_registry(
    directory: Path, db: Database, services: Services, *, clock: Callable[[], datetime]
) -> CollectorRegistry:
    """What the metrics listener serves: every process's files, and the database's figures."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(DatabaseCollector(db, services, clock=clock))
    return registry
