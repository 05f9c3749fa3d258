"""The append-only audit log: authenticated entries, a keyed chain, signed checkpoints.

An entry is written in the transaction of the change it records, with the hash
of its own content and a MAC made with the audit key (wallet.auditkey): no
lock, no read, so concurrent issuers do not queue behind each other's commits.
The sealer (``wallet worker`` every second, ``wallet audit verify`` before
checking) checks each committed entry's MAC, refuses (and names) any it did
not write, gives the others consecutive numbers and keyed links to the entry
before, and signs a checkpoint (sequence number, chain head, time). The newest
checkpoint is also written to the instance folder and served at
``/verifier/audit-checkpoint``, outside the database.

So whoever can write to the database but has not the audit key cannot add an
entry (forged), change one (changed), recompute the chain after a change
(recomputed chain), remove one (removed in the middle) or the newest ones
(removed at the tail: the outside checkpoint vouches for more), or swap two
(reordered) without :func:`verify_chain` naming it.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Text,
    bindparam,
    cast,
    column,
    func,
    insert,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from wallet.auditkey import AUDIT_CHECKPOINT_FILE, AuditKey, Checkpoint, CheckpointError
from wallet.domain import AuditEntry
from wallet.errors import WalletError
from wallet.files import write_atomically
from wallet.store.db import Serialised, serialise
from wallet.store.models import AuditCheckpointRow, AuditEntryRow, Base

GENESIS = "0" * 64
CHECKPOINT_FILE = AUDIT_CHECKPOINT_FILE
_log = Base.metadata.tables["audit_log"]
INSERT_ENTRY = insert(_log).returning(_log.c.id)
INSERT_ENTRY_MANY = insert(_log)  # executemany: no ids needed back
_LAST_SEALED = (
    select(_log.c.seq, _log.c.hash).where(_log.c.seq.is_not(None)).order_by(_log.c.seq.desc())
).limit(1)
# The sealer reads ``details`` undecoded: a row someone broke must be refused, not
# stop sealing (PostgreSQL's driver decodes JSON itself, SQLite's hands over text).
_UNSEALED = select(
    *(c for c in _log.c if c.name != "details"), type_coerce(_log.c.details, Text).label("details")
).where(_log.c.seq.is_(None))
_SEAL = (
    update(_log)
    .where(_log.c.id == bindparam("entry_id"), _log.c.seq.is_(None))
    .values(seq=bindparam("seq"), prev_hash=bindparam("prev"), hash=bindparam("link"))
)
# PostgreSQL: a whole batch in one UPDATE, the links handed over as four arrays.
# One UPDATE per entry (executemany) planned and ran each on its own: the server
# spent ~65 µs an entry, every half second a burst of tens of milliseconds on a
# core the requests needed (p99 of issuance at 16 clients 26 ms without sealing,
# 33 ms with it).
_LINKS = (
    func.unnest(
        cast(bindparam("ids"), ARRAY(BigInteger)),
        cast(bindparam("seqs"), ARRAY(BigInteger)),
        cast(bindparam("prevs"), ARRAY(Text)),
        cast(bindparam("links"), ARRAY(Text)),
    )
    .table_valued(
        column("id", BigInteger),
        column("seq", BigInteger),
        column("prev", Text),
        column("link", Text),
    )
    .render_derived(name="link")
)
_SEAL_ARRAYS = (
    update(_log)
    .where(_log.c.id == _LINKS.c.id, _log.c.seq.is_(None))
    .values(seq=_LINKS.c.seq, prev_hash=_LINKS.c.prev, hash=_LINKS.c.link)
)


class Tampering(StrEnum):
    """How the log was changed outside the service; each kind is named by verify."""

    CHANGED = "changed"
    REMOVED_IN_THE_MIDDLE = "removed in the middle"
    REMOVED_AT_THE_TAIL = "removed at the tail"
    REORDERED = "reordered"
    FORGED = "forged"
    RECOMPUTED_CHAIN = "recomputed chain"


class AuditTamperedError(WalletError):
    """The audit log does not match its own links or the checkpoint kept outside it."""

    code = "audit_chain_broken"

    def __init__(self, message: str, *, kind: Tampering) -> None:
        super().__init__(message)
        self.kind = kind


def content_hash(
    *, at: datetime, actor: str, action: str, target: str | None, details: Mapping[str, Any]
) -> str:
    """SHA-256 over a canonical JSON of what the entry says."""
    body = json.dumps(
        {
            "at": at.isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "target": target,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def link_hash(*, prev_hash: str, seq: int, content: str) -> str:
    """The unkeyed link of entries sealed before entries carried a MAC (``legacy``)."""
    return hashlib.sha256(f"{prev_hash}:{seq}:{content}".encode("ascii")).hexdigest()


def record(
    session: Session,
    *,
    key: AuditKey,
    actor: str,
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> None:
    """Write one entry in the caller's transaction: it commits or vanishes with it.

    No lock and no read: concurrent transactions append without waiting for
    each other. The MAC (one HMAC) proves the service wrote it; :func:`seal`
    links committed entries into the chain soon after.
    """
    values = entry_values(
        key=key, actor=actor, action=action, target=target, details=details, now=now
    )
    session.connection().execute(INSERT_ENTRY, values)


def entry_values(
    *,
    key: AuditKey,
    actor: str,
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> dict[str, Any]:
    """The columns of a new entry, for a caller that inserts it within a larger statement."""
    data = dict(details or {})
    digest = content_hash(at=now, actor=actor, action=action, target=target, details=data)
    return {
        "at": now,
        "actor": actor,
        "action": action,
        "target": target,
        "details": data,
        "content_hash": digest,
        "mac": key.mac(digest),
    }


# -- the checkpoint outside the database --------------------------------------


def checkpoint_path(instance_dir: Path) -> Path:
    return instance_dir / CHECKPOINT_FILE


def read_checkpoint_file(path: Path) -> object | None:
    """The signed checkpoint document in ``path``; None if there is none yet.

    Malformed content is returned as it is, for the signature check to refuse.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "unreadable"
    return _parse(text)


def _parse(text: str) -> object:
    """A stored checkpoint document; text that is no JSON stays text (and is refused)."""
    try:
        document: object = json.loads(text)
    except ValueError:
        return text
    return document


def write_checkpoint_file(path: Path, document: Mapping[str, Any]) -> bool:
    """Replace the checkpoint in ``path`` if ``document`` is newer; True if it did.

    Two sealers (the worker and ``wallet audit verify``) may finish in either
    order: a file lock and the sequence number keep the file from going back.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        current = read_checkpoint_file(path)
        seq = current.get("seq") if isinstance(current, dict) else None
        if isinstance(seq, int) and seq >= document["seq"]:
            return False
        data = json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        write_atomically(path, data, mode=0o644)
        return True
    finally:
        os.close(fd)  # releases the lock


def supersede_checkpoint_file(path: Path, *, now: datetime) -> Path:
    """Move the outside checkpoint aside, kept as evidence, once a restore is accepted."""
    archived = path.with_name(f"{path.stem}.superseded-{now:%Y%m%dT%H%M%S%fZ}{path.suffix}")
    os.replace(path, archived)
    return archived


def latest_checkpoint(session: Session) -> object | None:
    """The newest signed checkpoint in the database, as published (not checked here)."""
    row = session.scalars(
        select(AuditCheckpointRow)
        .order_by(AuditCheckpointRow.seq.desc(), AuditCheckpointRow.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return _parse(row.signed)


def _checked(key: AuditKey, document: object, where: str) -> Checkpoint:
    try:
        return key.public.verify_checkpoint(document)
    except CheckpointError as exc:
        raise AuditTamperedError(
            f"the audit checkpoint {where} is forged: {exc.message}", kind=Tampering.FORGED
        ) from exc


def _newest_known_checkpoint(
    session: Session, key: AuditKey, outside: object | None
) -> Checkpoint | None:
    """The newest of the database's and the outside checkpoint; raises if either is forged."""
    known: list[Checkpoint] = []
    document = latest_checkpoint(session)
    if document is not None:
        known.append(_checked(key, document, "in the database"))
    if outside is not None:
        known.append(_checked(key, outside, "kept outside the database"))
    return max(known, key=lambda c: c.seq, default=None)


# -- sealing --------------------------------------------------------------------


@dataclass(frozen=True)
class SealResult:
    """One sealing round: how many entries joined the chain, which were refused."""

    sealed: int
    refused: tuple[int, ...] = ()
    checkpoint: Mapping[str, Any] | None = None


def _entry_problem(row: Any) -> Tampering | None:
    """Why a not yet sealed row cannot be sealed (``row`` has the entry's columns)."""
    details = row.details
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            return Tampering.CHANGED
    expected = content_hash(
        at=row.at, actor=row.actor, action=row.action, target=row.target, details=details
    )
    if row.content_hash != expected:
        return Tampering.CHANGED
    return None


@dataclass(frozen=True)
class _Plan:
    """The links for the next entries, worked out from the chain's end ``seq``/``head``."""

    seq: int
    head: str
    links: list[dict[str, Any]]
    refused: tuple[int, ...]
    known: Checkpoint | None

    @property
    def end(self) -> tuple[int, str]:
        """The chain's end once the links are written."""
        return (
            (self.links[-1]["seq"], self.links[-1]["link"]) if self.links else (self.seq, self.head)
        )


def _plan(session: Session, *, key: AuditKey, outside: object | None, limit: int) -> _Plan:
    """Read and check: the chain's end against the newest checkpoint, each new
    entry's MAC and content, and the link each gets. Writes nothing."""
    connection = session.connection()
    last = connection.execute(_LAST_SEALED).first()
    seq, prev = (int(last.seq), str(last.hash)) if last is not None else (0, GENESIS)
    known = _newest_known_checkpoint(session, key, outside)
    if known is not None:
        _check_tail(session, known, seq=seq, head=prev)
    start, head = seq, prev
    links: list[dict[str, Any]] = []
    refused: list[int] = []
    after_id = 0
    while len(links) < limit:
        rows = connection.execute(
            _UNSEALED.where(_log.c.id > after_id).order_by(_log.c.id).limit(limit - len(links))
        ).all()
        if not rows:
            break
        for row in rows:
            after_id = row.id
            if (
                row.mac is None
                or not hmac.compare_digest(row.mac, key.mac(row.content_hash))
                or _entry_problem(row) is not None
            ):
                refused.append(row.id)
                continue
            seq += 1
            link = key.link(prev_hash=prev, seq=seq, content_hash=row.content_hash)
            links.append({"entry_id": row.id, "seq": seq, "prev": prev, "link": link})
            prev = link
    return _Plan(start, head, links, tuple(refused), known)


def _apply(session: Session, plan: _Plan, *, key: AuditKey, now: datetime) -> SealResult | None:
    """Write a plan's links and a signed checkpoint; None if the chain's end moved
    since the plan was made (another sealer was quicker: plan again)."""
    serialise(session, Serialised.AUDIT_CHAIN)
    connection = session.connection()
    last = connection.execute(_LAST_SEALED).first()
    if (last is not None and (int(last.seq), str(last.hash)) != (plan.seq, plan.head)) or (
        last is None and plan.seq != 0
    ):
        return None
    if plan.links:
        _write_links(connection, plan.links)
    if not plan.links and (plan.known is not None or plan.seq == 0):
        return SealResult(sealed=0, refused=plan.refused)
    # Something new, or a chain sealed before checkpoints existed: vouch for it now.
    legacy = plan.known.legacy if plan.known is not None else _count_legacy(session)
    seq, head = plan.end
    checkpoint = Checkpoint(seq=seq, head=head, at=now, legacy=legacy)
    document = key.sign_checkpoint(checkpoint)
    session.add(
        AuditCheckpointRow(seq=seq, head=head, at=now, signed=json.dumps(document, sort_keys=True))
    )
    session.flush()
    return SealResult(sealed=len(plan.links), refused=plan.refused, checkpoint=document)


def _write_links(connection: Connection, links: list[dict[str, Any]]) -> None:
    if connection.dialect.name != "postgresql":
        connection.execute(_SEAL, links)  # SQLite: in-process, no statement to send
        return
    columns = {"ids": "entry_id", "seqs": "seq", "prevs": "prev", "links": "link"}
    connection.execute(
        _SEAL_ARRAYS, {name: [link[key] for link in links] for name, key in columns.items()}
    )


def seal(
    session: Session,
    *,
    key: AuditKey,
    now: datetime,
    outside: object | None = None,
    limit: int = 5000,
) -> SealResult:
    """Link up to ``limit`` committed, genuine, not yet sealed entries into the chain.

    First checks that the chain still ends where the newest checkpoint (in the
    database or ``outside`` it) says; if not, nothing is sealed and
    :class:`AuditTamperedError` names why: sealing on would bury the evidence.
    An entry whose MAC is not the audit key's is refused and stays unsealed,
    so ``wallet audit verify`` names it. Entries are sealed in the order they
    are seen; the chain order is the sealing order. Concurrent sealers queue
    on a lock; issuers never wait for it. The caller commits, then keeps the
    returned checkpoint outside the database (:func:`seal_all` does both).
    """
    serialise(session, Serialised.AUDIT_CHAIN)
    result = _apply(
        session, _plan(session, key=key, outside=outside, limit=limit), key=key, now=now
    )
    assert result is not None, "the chain cannot move under the sealing lock"
    return result


def _count_legacy(session: Session) -> int:
    """Entries sealed before entries carried a MAC (counted once, at the first checkpoint)."""
    query = select(func.count()).where(_log.c.seq.is_not(None), _log.c.mac.is_(None))
    return int(session.execute(query).scalar_one())


def _entries(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first} to {last}"


def _cut_tail(chain_end: int, checkpoint: Checkpoint) -> str:
    removed = _entries(chain_end + 1, checkpoint.seq)
    return (
        f"the chain ends at entry {chain_end}, but the checkpoint of "
        f"{checkpoint.at:%Y-%m-%d %H:%M:%S} vouches for {checkpoint.seq}: "
        f"{removed} {'was' if chain_end + 1 == checkpoint.seq else 'were'} removed at the tail"
    )


def _check_tail(session: Session, known: Checkpoint, *, seq: int, head: str) -> None:
    if known.seq > seq:
        raise AuditTamperedError(
            f"audit log: {_cut_tail(seq, known)}", kind=Tampering.REMOVED_AT_THE_TAIL
        )
    at_checkpoint: str | None = head
    if known.seq < seq:
        at_checkpoint = session.execute(
            select(_log.c.hash).where(_log.c.seq == known.seq)
        ).scalar_one_or_none()
    if known.seq > 0 and at_checkpoint != known.head:
        raise AuditTamperedError(
            f"entry {known.seq} of the audit chain is not the one the checkpoint of "
            f"{known.at:%Y-%m-%d %H:%M:%S} vouches for: the chain was recomputed",
            kind=Tampering.RECOMPUTED_CHAIN,
        )


def seal_all(
    session_factory: Callable[[], AbstractContextManager[Session]],
    *,
    key: AuditKey,
    checkpoint_file: Path | None,
    clock: Callable[[], datetime],
    batch: int = 5000,
    read_factory: Callable[[], AbstractContextManager[Session]] | None = None,
) -> SealResult:
    """Seal everything committed so far, one transaction per ``batch`` entries.

    With ``read_factory`` each batch is worked out in a read transaction and only
    written in a write transaction (``session_factory``): on SQLite, whose one
    write lock every issuance needs, sealing then holds it for the writes alone,
    not for reading and checking every entry (3.3 instead of 7.3 ms a batch of 200).
    Each batch's checkpoint is written to ``checkpoint_file`` after its commit
    (a file written before could vouch for entries that were rolled back).
    """
    total = 0
    refused: set[int] = set()
    newest: Mapping[str, Any] | None = None
    while True:
        outside = read_checkpoint_file(checkpoint_file) if checkpoint_file else None
        if read_factory is None:
            with session_factory() as session:
                result: SealResult | None = seal(
                    session, key=key, now=clock(), outside=outside, limit=batch
                )
        else:
            with read_factory() as session:
                plan = _plan(session, key=key, outside=outside, limit=batch)
            with session_factory() as session:
                result = _apply(session, plan, key=key, now=clock())
            if result is None:
                continue  # another sealer moved the chain's end: plan again from there
        assert result is not None
        if result.checkpoint is not None:
            newest = result.checkpoint
            if checkpoint_file is not None:
                write_checkpoint_file(checkpoint_file, result.checkpoint)
        total += result.sealed
        refused.update(result.refused)
        # A short batch found no more: stop. Going on until a batch comes back empty
        # never ends under load (issuers add entries as fast as it seals them) and
        # took every third turn at SQLite's write lock, a checkpoint each: issuance
        # halved (936/s without sealing, 456/s with, 16 clients).
        if result.sealed < batch:
            return SealResult(sealed=total, refused=tuple(sorted(refused)), checkpoint=newest)


# -- verifying ------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One way the log was tampered with; ``entry`` is the entry's id where there is one."""

    kind: Tampering
    entry: int | None
    message: str


@dataclass(frozen=True)
class ChainReport:
    entries: int
    problems: tuple[Problem, ...] = ()
    unsealed: int = 0

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first_broken(self) -> int | None:
        """The id of the first entry named, or None (intact, or only the tail is gone)."""
        return self.problems[0].entry if self.problems else None

    @property
    def problem(self) -> str:
        return self.problems[0].message if self.problems else ""

    @property
    def kinds(self) -> frozenset[Tampering]:
        return frozenset(p.kind for p in self.problems)


def _content_matches(row: AuditEntryRow) -> bool:
    return _entry_problem(row) is None


def _mac_matches(key: AuditKey, row: AuditEntryRow) -> bool:
    return row.mac is not None and hmac.compare_digest(row.mac, key.mac(row.content_hash))


def _at_seq(session: Session, seq: int) -> AuditEntryRow | None:
    return session.scalars(select(AuditEntryRow).where(AuditEntryRow.seq == seq)).first()


def _checkpoints(session: Session, key: AuditKey, outside: object | None) -> _Checkpoints:
    """Every checkpoint in the database and the outside one, with the forged ones named."""
    found = _Checkpoints()
    documents: list[tuple[str, object]] = [
        (f"#{row.id} in the database", _parse(row.signed))
        for row in session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.id))
    ]
    if outside is not None:
        documents.append(("kept outside the database", outside))
    for where, document in documents:
        try:
            checkpoint = key.public.verify_checkpoint(document)
        except CheckpointError as exc:
            found.problems.append(
                Problem(Tampering.FORGED, None, f"the checkpoint {where} is forged: {exc.message}")
            )
            continue
        found.heads.setdefault(checkpoint.seq, []).append(checkpoint)
        if found.newest is None or checkpoint.seq > found.newest.seq:
            found.newest = checkpoint
    return found


@dataclass
class _Checkpoints:
    heads: dict[int, list[Checkpoint]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    newest: Checkpoint | None = None


def verify_chain(
    session: Session, *, key: AuditKey, outside: object | None = None, batch: int = 1000
) -> ChainReport:
    """Walk the sealed chain in order, compare its end with the checkpoints, then
    check the entries not sealed yet.

    The walk stops at the first entry that does not fit (everything after it is
    suspect) and names how it was tampered with; forged checkpoints and
    unsealed entries the service did not write are named as well.
    """
    found = _checkpoints(session, key, outside)
    legacy_bound = found.newest.legacy if found.newest is not None else None
    problems: list[Problem] = list(found.problems)
    prev_hash = GENESIS
    count = 0
    last_seq = 0
    keyed_seen = False
    broken: Problem | None = None
    while broken is None:
        rows = session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.seq > last_seq)
            .order_by(AuditEntryRow.seq)
            .limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            count += 1
            broken = _judge_sealed(
                session, key, row, prev_hash=prev_hash, last_seq=last_seq,
                legacy=not keyed_seen and row.mac is None
                and (legacy_bound is None or int(row.seq or 0) <= legacy_bound),
                found=found,
            )  # fmt: skip
            if broken is not None:
                break
            keyed_seen = keyed_seen or row.mac is not None
            prev_hash = str(row.hash)
            last_seq = int(row.seq or 0)
    if broken is not None:
        problems.append(broken)
        missing = _missing_entries(session, found.newest)
        if missing and broken.kind not in _REMOVED:
            problems.append(missing)
    elif found.newest is not None and found.newest.seq > last_seq:
        problems.append(
            Problem(Tampering.REMOVED_AT_THE_TAIL, None, _cut_tail(last_seq, found.newest))
        )
    unsealed = 0
    last_id = 0
    while True:
        loose = session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.seq.is_(None), AuditEntryRow.id > last_id)
            .order_by(AuditEntryRow.id)
            .limit(batch)
        ).all()
        if not loose:
            break
        for row in loose:
            unsealed += 1
            last_id = row.id
            if not _mac_matches(key, row):
                problems.append(
                    Problem(
                        Tampering.FORGED,
                        row.id,
                        "its MAC is not the audit key's: it was written straight into the "
                        "database, not by the service, and was not sealed",
                    )
                )
            elif not _content_matches(row) or row.prev_hash is not None or row.hash is not None:
                problems.append(
                    Problem(Tampering.CHANGED, row.id, "its content does not match its hash")
                )
    return ChainReport(entries=count + unsealed, problems=tuple(problems), unsealed=unsealed)


_REMOVED = (Tampering.REMOVED_IN_THE_MIDDLE, Tampering.REMOVED_AT_THE_TAIL)


def _missing_entries(session: Session, newest: Checkpoint | None) -> Problem | None:
    """Entries a checkpoint vouches for that are gone, wherever the walk stopped."""
    if newest is None:
        return None
    query = select(func.count(), func.max(_log.c.seq)).where(
        _log.c.seq.is_not(None), _log.c.seq <= newest.seq
    )
    present, highest = session.execute(query).one()
    if present >= newest.seq:
        return None
    vouched = (
        f"the checkpoint of {newest.at:%Y-%m-%d %H:%M:%S} vouches for {newest.seq} entries; "
        f"only {present} of them are left"
    )
    if present < (highest or 0):  # a gap in the numbers
        return Problem(Tampering.REMOVED_IN_THE_MIDDLE, None, vouched)
    return Problem(
        Tampering.REMOVED_AT_THE_TAIL,
        None,
        f"{vouched} (removed at the tail, or in the middle and the rest renumbered)",
    )


def _judge_sealed(
    session: Session,
    key: AuditKey,
    row: AuditEntryRow,
    *,
    prev_hash: str,
    last_seq: int,
    legacy: bool,
    found: _Checkpoints,
) -> Problem | None:
    """What is wrong with sealed entry ``row`` where the chain so far ends in ``prev_hash``."""
    seq = int(row.seq or 0)  # the query selects sealed entries only
    if seq != last_seq + 1:
        return Problem(
            Tampering.REMOVED_IN_THE_MIDDLE,
            row.id,
            f"{_entries(last_seq + 1, seq - 1)} of the chain "
            f"{'is' if seq - 1 == last_seq + 1 else 'are'} gone",
        )
    if not _content_matches(row):
        return Problem(Tampering.CHANGED, row.id, "its content does not match its hash")
    if not legacy and not _mac_matches(key, row):
        return _judge_unauthentic(session, key, row, found=found)
    if row.prev_hash != prev_hash:
        # A genuine entry whose predecessor is elsewhere was moved; if its
        # predecessor is nowhere, that one was removed.
        predecessor = session.scalars(
            select(AuditEntryRow.id).where(AuditEntryRow.hash == row.prev_hash)
        ).first()
        if predecessor is not None:
            return Problem(
                Tampering.REORDERED,
                row.id,
                f"it was sealed right after entry #{predecessor}, which now stands elsewhere",
            )
        return Problem(
            Tampering.REMOVED_IN_THE_MIDDLE,
            row.id,
            "the entry sealed before it is gone (the chain was renumbered)",
        )
    if legacy:
        expected = link_hash(prev_hash=prev_hash, seq=seq, content=row.content_hash)
    else:
        expected = key.link(prev_hash=prev_hash, seq=seq, content_hash=row.content_hash)
    if row.hash != expected:
        after = _at_seq(session, seq + 1)
        if after is not None and after.prev_hash == row.hash:
            return Problem(
                Tampering.RECOMPUTED_CHAIN,
                row.id,
                "its chain hash and those after it were recomputed without the audit key",
            )
        return Problem(Tampering.CHANGED, row.id, "its chain hash does not match")
    for checkpoint in found.heads.get(seq, []):
        if checkpoint.head != row.hash:
            return Problem(
                Tampering.RECOMPUTED_CHAIN,
                row.id,
                f"the chain up to it is not the one the checkpoint of "
                f"{checkpoint.at:%Y-%m-%d %H:%M:%S} vouches for",
            )
    return None


def _judge_unauthentic(
    session: Session, key: AuditKey, row: AuditEntryRow, *, found: _Checkpoints
) -> Problem:
    """A sealed entry whose MAC is wrong: forged, changed, or changed and the chain recomputed."""
    seq = int(row.seq or 0)
    if found.newest is None or seq > found.newest.seq:
        return Problem(
            Tampering.FORGED,
            row.id,
            "its MAC is not the audit key's and no checkpoint covers it: it was written "
            "and sealed straight in the database",
        )
    after = _at_seq(session, seq + 1)
    recomputed = (
        after is not None
        and after.prev_hash == row.hash
        and after.hash
        != key.link(prev_hash=str(after.prev_hash), seq=seq + 1, content_hash=after.content_hash)
    ) or any(c.head != row.hash for c in found.heads.get(seq, []))
    if recomputed:
        return Problem(
            Tampering.RECOMPUTED_CHAIN,
            row.id,
            "it was changed and the chain hashes after it recomputed without the audit key",
        )
    return Problem(
        Tampering.CHANGED,
        row.id,
        "it was changed and given a fresh content hash: its MAC and chain hash do not match",
    )


def _entry(row: AuditEntryRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        details=dict(row.details),
        seq=row.seq,
        hash=row.hash,
    )


def trail(session: Session, target: str, *, limit: int = 200) -> list[AuditEntry]:
    """The entries about one pass (or user, token …), newest first."""
    rows = session.scalars(
        select(AuditEntryRow)
        .where(AuditEntryRow.target == target)
        .order_by(AuditEntryRow.id.desc())
        .limit(limit)
    )
    return [_entry(row) for row in rows]


def newest(session: Session, *, limit: int) -> list[AuditEntry]:
    """The newest entries of the whole log, newest first."""
    rows = session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.id.desc()).limit(limit))
    return [_entry(row) for row in rows]


def entry_ids(session: Session) -> list[int]:
    return list(session.scalars(select(AuditEntryRow.id).order_by(AuditEntryRow.id)))


def entry_loads(session: Session, entry_id: int) -> bool:
    """Whether one entry's columns still load (a database admin may have broken them)."""
    try:
        session.scalars(select(AuditEntryRow).where(AuditEntryRow.id == entry_id)).one()
    except DBAPIError:
        raise
    except (ValueError, TypeError, StatementError):
        return False
    return True
