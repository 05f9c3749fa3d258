"""Issuing passes and changing their state: each use case in the caller's transaction.

Services flush, the edge commits: a view or CLI command wraps each call in
``db.transaction(write=True)``, so a failure anywhere leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    Select,
    String,
    Table,
    UnaryExpression,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from wallet.domain import (
    MAX_LIST_LIMIT,
    MAX_REASON_LENGTH,
    PASS_STATES,
    Action,
    PassRecord,
    PassState,
    WalletPass,
    claim_url,
    transition,
)
from wallet.errors import (
    ClaimLinkReplacedError,
    InputError,
    NotFoundError,
    PermitExistsError,
    StateConflictError,
)
from wallet.passtypes import PassType, has_control_characters, split_enforcement_value
from wallet.services import audit, metrics, outbox, wallets
from wallet.services.context import Services
from wallet.services.open_lists import ListSlot
from wallet.services.publishing import status_list_uri
from wallet.status import MIN_LIST_SIZE
from wallet.store.driver import DriverStatement
from wallet.store.models import Base, ClaimLinkRow, PassRow, StatusListRow
from wallet.tokens import (
    SERIAL_RE,
    new_serial,
    sign_pass_token,
)

# A list takes new passes until it is this full; then a fresh list starts. Random
# slots stay cheap to find and every list keeps a large herd.
FILL_LIMIT = 0.75
# Random slots tried before giving up. Near FILL_LIMIT each try fails with
# probability 0.75, so 16 tries failed one issuance in a hundred (0.75**16);
# 64 fail one in a hundred million. Tries cost nothing until they are needed.
MAX_SLOT_ATTEMPTS = 64
BACKDATE_LIMIT = timedelta(days=1)
FORWARD_LIMIT = timedelta(days=366)
MAX_EXPIRING_WINDOW = timedelta(days=366)


@dataclass(frozen=True)
class IssuedPass:
    """A new pass and the secret of its claim link (shown once, stored only hashed)."""

    record: PassRecord
    claim_secret: str
    # The stored row's id, for services that write beside it in the same
    # transaction (contacts, e-mail): one round trip fewer than a lookup by serial.
    pass_id: int = field(default=0, repr=False, compare=False)

    @property
    def qr_text(self) -> str:
        return self.record.qr_text

    def claim_url(self, public_url: str) -> str:
        return claim_url(public_url, self.claim_secret)

    def to_json(self, public_url: str) -> dict[str, object]:
        """The pass's one JSON shape plus, this once, its claim link."""
        return {**self.record.to_json(), "claim_url": self.claim_url(public_url)}


def pass_record(row: PassRow) -> PassRecord:
    """The domain value of a stored pass: what every service hands to web and cli."""
    return PassRecord(
        serial=row.serial,
        pass_type=row.pass_type,
        state=PassState(row.state),
        holder=dict(row.holder),
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        reason=row.reason,
        replaces=row.replaces,
        replaced_by=row.replaced_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        kid=row.kid,
        token=row.token,
    )


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# Issuance is the service's busiest write: its statements are built once, so
# each call only binds parameters (SQLAlchemy then reuses the compiled SQL), and
# they run on the session's connection, past the ORM's execution machinery.
# On PostgreSQL one statement stores the pass, its claim link, its audit entry
# and a permit's plate-and-zone keys (data-modifying CTEs): with BEGIN and COMMIT,
# three round trips.
_passes, _lists = Base.metadata.tables["passes"], Base.metadata.tables["status_lists"]
_claims, _log = Base.metadata.tables["claim_links"], Base.metadata.tables["audit_log"]
_keys = Base.metadata.tables["enforcement_keys"]
# A slot taken by a concurrent issuer inserts nothing and returns no id (no
# savepoint needed, and PostgreSQL's transaction stays usable).
_SLOT = ["status_list_id", "status_idx"]
_INSERT_PASS_SQLITE = (
    sqlite.insert(_passes).on_conflict_do_nothing(index_elements=_SLOT).returning(_passes.c.id)
)
_INSERT_CLAIM_LINK = insert(_claims)
_INSERT_PASS_DRIVER = DriverStatement(_INSERT_PASS_SQLITE)
_INSERT_CLAIM_LINK_DRIVER = DriverStatement(_INSERT_CLAIM_LINK)
_INSERT_ENTRY_DRIVER = DriverStatement(audit.INSERT_ENTRY_MANY)
# A permit's plate-and-zone keys (one row per plate, see models.EnforcementKeyRow).
_INSERT_KEYS = insert(_keys)
# Many passes at once (imports): a row whose slot is taken is skipped, and the
# ids come back by serial, so the caller sees which ones went in.
_INSERT_MANY = {
    "postgresql": postgresql.insert(_passes)
    .on_conflict_do_nothing(index_elements=_SLOT)
    .returning(_passes.c.id, _passes.c.serial),
    "sqlite": sqlite.insert(_passes)
    .on_conflict_do_nothing(index_elements=_SLOT)
    .returning(_passes.c.id, _passes.c.serial),
}
_PASS_COLUMNS = (
    "serial", "pass_type", "holder", "holder_search", "state", "valid_from", "valid_until",
    "status_list_id", "status_idx", "kid", "token", "update_tag", "apple_auth_token",
    "replaces", "external_key", "wallet_serial", "created_at", "updated_at",
)  # fmt: skip
_CLAIM_COLUMNS = ("token_hash", "expires_at", "created_at")
# Every column audit.entry_values fills (the sealer fills the rest): a column
# added there and forgotten here would be a missing parameter, not a silent NULL.
_SEALER_COLUMNS = frozenset({"id", "seq", "prev_hash", "hash"})
_AUDIT_COLUMNS = tuple(c.name for c in _log.columns if c.name not in _SEALER_COLUMNS)


def _bind(table: Table, column: str, prefix: str) -> BindParameter[Any]:
    # Prefixed: SQLAlchemy reserves a column's own name for its VALUES parameter.
    return bindparam(f"{prefix}{column}", type_=table.c[column].type)


def _issue_statement() -> Select[int]:
    new_pass = (
        postgresql.insert(_passes)
        .values({c: _bind(_passes, c, "p_") for c in _PASS_COLUMNS})
        .on_conflict_do_nothing(index_elements=_SLOT)
        .returning(_passes.c.id)
        .cte("new_pass")
    )
    # Both read new_pass: a slot lost to a concurrent issuer writes nothing at all.
    claim_link = insert(_claims).from_select(
        ["pass_id", *_CLAIM_COLUMNS],
        select(new_pass.c.id, *(_bind(_claims, c, "c_") for c in _CLAIM_COLUMNS)),
    )
    entry = insert(_log).from_select(
        list(_AUDIT_COLUMNS),
        select(*(_bind(_log, c, "a_") for c in _AUDIT_COLUMNS)).select_from(new_pass),
    )
    # One row per plate of a permit (none for other passes): a plate and zone another
    # live permit holds makes the whole statement fail, so nothing is written.
    plates = func.unnest(bindparam("k_values", type_=postgresql.ARRAY(String(64))))
    keys = insert(_keys).from_select(
        ["pass_id", "value"], select(new_pass.c.id, plates).select_from(new_pass)
    )
    return select(new_pass.c.id).add_cte(
        claim_link.cte("new_claim_link"), entry.cte("new_entry"), keys.cte("new_keys")
    )


_ISSUE_POSTGRESQL = _issue_statement()
_OPEN_LIST = (
    select(_lists.c.id, _lists.c.name, _lists.c.size)
    .where(_lists.c.pass_type == bindparam("pass_type"))
    .where(_lists.c.used < _lists.c.size * FILL_LIMIT)
    .order_by(_lists.c.id)
    .limit(1)
)
_TAKEN_SLOTS = select(_passes.c.status_idx).where(_passes.c.status_list_id == bindparam("list_id"))
_SET_USED = (
    update(_lists)
    .where(_lists.c.id == bindparam("list_id"), _lists.c.used < bindparam("counted"))
    .values(used=bindparam("counted"))
)
# How many passes a process issues into a list between two counts: few enough
# that the list overfills by little, many enough that counting costs nothing.
RECOUNT_EVERY = 1000


def _status_list(
    session: Session, services: Services, pass_type: PassType, now: datetime
) -> ListSlot:
    """The list new passes of this type go into, creating the next one when full."""
    cached = services.open_lists.take(pass_type.id)
    if cached is not None:
        return cached
    connection = session.connection()
    open_list = {"pass_type": pass_type.id}
    while (found := connection.execute(_OPEN_LIST, open_list).first()) is not None:
        slot = ListSlot(*found)
        taken = connection.execute(_TAKEN_SLOTS, {"list_id": slot.id}).scalars().all()
        counted = len(taken)
        # Written only when counting (rarely): a full list is no longer found.
        connection.execute(_SET_USED, {"list_id": slot.id, "counted": counted})
        room = int(slot.size * FILL_LIMIT) - counted
        if room > 0:
            budget = min(RECOUNT_EVERY, room // 16)
            services.open_lists.keep(pass_type.id, slot, budget=budget, taken=taken)
            return slot
    count = session.scalar(
        select(func.count())
        .select_from(StatusListRow)
        .where(StatusListRow.pass_type == pass_type.id)
    )
    row = StatusListRow(
        name=f"{pass_type.id}-{(count or 0) + 1}",
        pass_type=pass_type.id,
        bits=pass_type.status_bits,
        size=MIN_LIST_SIZE,
        used=0,
        version=1,
        published_version=0,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # another worker created it a moment ago
        again = session.execute(_OPEN_LIST, {"pass_type": pass_type.id}).first()
        if again is None:
            raise
        return ListSlot(*again)
    return ListSlot(row.id, row.name, row.size)


def _store_pass(
    session: Session,
    values: Mapping[str, object],
    claim_link: Mapping[str, object],
    entry: Mapping[str, object],
    keys: Sequence[str],
) -> int | None:
    """Insert the pass, its claim link, audit entry and plate-and-zone keys; None (and
    nothing written) if its status slot was taken by a concurrent issuer."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        parameters = {
            **{f"p_{k}": v for k, v in values.items()},
            **{f"c_{k}": v for k, v in claim_link.items()},
            **{f"a_{k}": v for k, v in entry.items()},
            "k_values": list(keys),
        }
        found = connection.execute(_ISSUE_POSTGRESQL, parameters).scalar_one_or_none()
        return None if found is None else int(found)
    # SQLite runs in-process (no round trips) and has no data-modifying CTEs. These
    # run on the driver's cursor: they hold the one write lock (wallet.store.driver).
    row = _INSERT_PASS_DRIVER.run(connection, values)
    if row is None:
        return None
    pass_id = row[0]
    _INSERT_CLAIM_LINK_DRIVER.run(connection, {"pass_id": pass_id, **claim_link})
    _INSERT_ENTRY_DRIVER.run(connection, entry)
    if keys:
        connection.execute(_INSERT_KEYS, [{"pass_id": pass_id, "value": key} for key in keys])
    return int(pass_id)


def _check_window(
    pass_type: PassType,
    valid_from: datetime | None,
    valid_until: datetime | None,
    now: datetime,
    period_from: datetime | None = None,
    may_run_until: datetime | None = None,
) -> tuple[datetime, datetime]:
    start = valid_from or now
    if start.tzinfo is None:
        raise InputError(
            "valid_from needs a time zone (e.g. 2026-12-01T00:00:00Z)", field="valid_from"
        )
    if start < now - BACKDATE_LIMIT:
        raise InputError("valid_from may lie at most one day in the past", field="valid_from")
    # A renewal's period follows on from the old pass's end, not from today.
    longest = pass_type.valid_until(max(start, period_from or start))
    # A reissue keeps the end of the pass it replaces, renewed or not.
    longest = max(longest, may_run_until or longest)
    end = valid_until or longest
    if end.tzinfo is None:
        raise InputError("valid_until needs a time zone", field="valid_until")
    if end <= max(start, now):
        raise InputError(
            "valid_until must lie after valid_from and in the future", field="valid_until"
        )
    if end > longest:
        raise InputError(
            f"valid_until lies beyond the longest validity of a {pass_type.id} pass "
            f"({longest:%Y-%m-%d})",
            field="valid_until",
        )
    return start, end


_UNPLACED = ListSlot(0, "", 0)  # no list yet: _place gives it one


@dataclass
class _Draft:
    """A pass ready to sign once it has a status slot: everything but the index."""

    pass_type: PassType
    cleaned: dict[str, str]
    start: datetime
    end: datetime
    key: Any  # the signing key (wallet.keys.SigningKey)
    values: dict[str, object]
    secret: str
    claim_link: dict[str, object]
    entry: dict[str, object]
    # Its plate-and-zone keys, one per plate (PassType.enforcement_values): held while live.
    keys: tuple[str, ...] = ()
    # Where its status bit goes: set by _place, in the write transaction.
    status_list: ListSlot = _UNPLACED
    uri: str = ""

    def sign(self, services: Services, idx: int, now: datetime) -> str:
        return sign_pass_token(
            key=self.key,
            issuer=services.settings.issuer,
            serial=str(self.values["serial"]),
            pass_type=self.pass_type.id,
            holder=self.pass_type.token_fields(self.cleaned),
            issued_at=now,
            expires_at=self.end,
            not_before=self.start if self.start > now else None,
            status_idx=idx,
            status_uri=self.uri,
        )

    def issued(self, token: str, pass_id: int, now: datetime) -> IssuedPass:
        record = PassRecord(
            serial=str(self.values["serial"]), pass_type=self.pass_type.id,
            state=PassState.VALID, holder=dict(self.cleaned), valid_from=self.start,
            valid_until=self.end, reason=None, replaces=self.values["replaces"],  # type: ignore[arg-type]
            replaced_by=None, created_at=now, updated_at=now, kid=self.key.kid, token=token,
        )  # fmt: skip
        return IssuedPass(record=record, claim_secret=self.secret, pass_id=pass_id)


PreparedPass = _Draft


def prepare_pass(
    services: Services,
    *,
    type_id: object,
    holder: object,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    actor: str,
    now: datetime,
    replaces: str | None = None,
    external_key: str | None = None,
    renewal_of: PassRow | None = None,
    may_run_until: datetime | None = None,
) -> PreparedPass:
    """A new pass checked and drafted without the database; :func:`issue_prepared`
    stores it. An edge that prepares before it opens the write transaction holds
    SQLite's one write lock that much shorter (the checks, the claim link's hash
    and the audit entry's MAC happen outside it)."""
    pass_type = services.pass_type(type_id)
    if not isinstance(holder, Mapping):
        raise InputError("holder must be an object of the pass type's fields", field="holder")
    cleaned = pass_type.clean_holder(holder)
    period_from = renewal_of.valid_until if renewal_of is not None else None
    start, end = _check_window(pass_type, valid_from, valid_until, now, period_from, may_run_until)
    key = services.keys.current_signing_key(pass_type.id, now=now)
    serial = new_serial()
    values: dict[str, object] = {
        "serial": serial,
        "pass_type": pass_type.id,
        "holder": cleaned,
        "holder_search": " ".join(cleaned.values()).lower(),
        "state": PassState.VALID.value,
        "valid_from": start,
        "valid_until": end,
        "kid": key.kid,
        "update_tag": 0,
        "apple_auth_token": (
            renewal_of.apple_auth_token if renewal_of is not None else secrets.token_urlsafe(24)
        ),
        "replaces": replaces,
        "external_key": external_key,
        "wallet_serial": renewal_of.wallet_id if renewal_of is not None else None,
        "created_at": now,
        "updated_at": now,
    }
    secret, claim_link = _new_claim_link(services, now=now)
    entry = audit.entry_values(
        key=services.audit_key,
        actor=actor,
        action="pass.issue",
        target=serial,
        details={"type": pass_type.id, "valid_until": end.isoformat(), "replaces": replaces},
        now=now,
    )
    return _Draft(pass_type, cleaned, start, end, key, values, secret, claim_link, entry,
                  pass_type.enforcement_values(cleaned))  # fmt: skip


def _place(session: Session, services: Services, draft: _Draft, now: datetime) -> _Draft:
    """Give a prepared pass its status list (the one step of drafting that reads)."""
    return _placed(services, draft, _status_list(session, services, draft.pass_type, now))


def _placed(services: Services, draft: _Draft, slot: ListSlot) -> _Draft:
    draft.status_list = slot
    draft.values["status_list_id"] = slot.id
    draft.uri = status_list_uri(services.settings.public_url, slot.name)
    return draft


def place_from_memory(services: Services, draft: PreparedPass) -> bool:
    """Give a prepared pass its status list if this process knows an open one, and
    say whether its issuance is now one statement that stands alone (for
    :meth:`Database.statements <wallet.store.db.Database.statements>`).

    Not when the list must be looked up or made (reads, a savepoint), nor for a
    permit, whose plates are checked against the live permits first.
    """
    if draft.keys:
        return False
    slot = services.open_lists.take(draft.pass_type.id)
    if slot is None:
        return False
    _placed(services, draft, slot)
    return True


def issue_placed(
    session: Session, services: Services, draft: PreparedPass, *, now: datetime
) -> IssuedPass:
    """Sign and store a pass :func:`place_from_memory` placed: each attempt one statement
    (a slot another issuer took meanwhile writes nothing; another is drawn)."""
    return _store_draft(session, services, draft, now)


# Keys exist only while their permit is live: any row found is a live permit's.
_LIVE_WITH_KEYS = (
    select(_keys.c.value, _passes.c.serial)
    .join_from(_keys, _passes, _keys.c.pass_id == _passes.c.id)
    .where(_keys.c.value.in_(bindparam("keys", expanding=True)))
)


def _check_one_live(session: Session, pass_type: PassType, keys: Sequence[str]) -> None:
    """One live permit per plate and zone, for each plate of the new permit: name the
    permit there is (the unique constraint on enforcement_keys backs this)."""
    if not keys:
        return
    found = dict(session.connection().execute(_LIVE_WITH_KEYS, {"keys": list(keys)}).all())
    taken = next((key for key in keys if key in found), None)
    if taken is not None:
        raise _already_live(pass_type, [taken], found[taken])


def release_plates(session: Session, pass_id: int) -> None:
    """A permit lets go of its plates and zones (revoked, or renewed: its successor
    takes them): another permit may hold them from now on."""
    session.connection().execute(_DELETE_KEYS, {"pass_id": pass_id})


_DELETE_KEYS = delete(_keys).where(_keys.c.pass_id == bindparam("pass_id"))


def _already_live(
    pass_type: PassType, keys: Sequence[str], serial: str | None = None
) -> PermitExistsError:
    plates = [split_enforcement_value(key)[0] for key in keys]
    zone = split_enforcement_value(keys[0])[1]
    which = f" ({serial})" if serial else ""
    return PermitExistsError(
        f"{' or '.join(plates)} in zone {zone} has a permit already{which}: renew it, or "
        "for a new car reissue it with the new plate",
        field=f"holder.{pass_type.enforcement_plate or 'plate'}",
    )


def _unique_violation(exc: IntegrityError, draft: _Draft | None) -> PermitExistsError:
    """A concurrent issuer won a plate and zone: the same answer as the check above.

    Both databases name the constraint's table in the message (SQLite: "UNIQUE
    constraint failed: enforcement_keys.value", PostgreSQL: "... unique constraint
    "uq_enforcement_keys_value""), neither reliably which value: with several plates,
    the answer names them all.
    """
    if "enforcement_keys" not in str(exc.orig):
        raise exc
    if draft is None:  # a multi-row insert: which row, the database does not say on SQLite
        return PermitExistsError(
            "a plate of this batch got a permit since the file was checked; nothing of the "
            "batch was issued: run the import again, its check names the row",
            field="holder.plate",
        )
    return _already_live(draft.pass_type, draft.keys)


def _store_draft(session: Session, services: Services, draft: _Draft, now: datetime) -> IssuedPass:
    """Sign and store one draft, drawing another slot while a concurrent issuer has it."""
    for _ in range(MAX_SLOT_ATTEMPTS):
        # Random, never sequential: the index must not reveal the order of issue.
        idx = services.open_lists.draw(draft.status_list)
        token = draft.sign(services, idx, now)
        try:
            pass_id = _store_pass(
                session, {**draft.values, "status_idx": idx, "token": token}, draft.claim_link,
                draft.entry, draft.keys,
            )  # fmt: skip
        except IntegrityError as exc:
            raise _unique_violation(exc, draft) from exc
        # Ours now, or another issuer's: either way not to be drawn again. (Should
        # this transaction roll back, the process merely skips one free index.)
        services.open_lists.mark(draft.status_list, idx)
        if pass_id is not None:
            metrics.count_pass(session, "issued", draft.pass_type.id)
            return draft.issued(token, pass_id, now)
    raise StateConflictError("no free status slot found; try again")


def issue_pass(
    session: Session,
    services: Services,
    *,
    type_id: object,
    holder: object,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    actor: str,
    now: datetime,
    replaces: str | None = None,
    external_key: str | None = None,
    renewal_of: PassRow | None = None,
    may_run_until: datetime | None = None,
) -> IssuedPass:
    """Sign and store a new pass with a random status slot and a claim link.

    ``external_key`` is the holder's key in the city's own system (an import
    sets it): unique per pass type, so a second pass for it is refused.
    ``renewal_of`` makes the pass its successor in the holder's wallets: same
    wallet serial and Apple secret, validity counted on from its end.
    """
    draft = prepare_pass(
        services, type_id=type_id, holder=holder, valid_from=valid_from,
        valid_until=valid_until, actor=actor, now=now, replaces=replaces,
        external_key=external_key, renewal_of=renewal_of, may_run_until=may_run_until,
    )  # fmt: skip
    return issue_prepared(session, services, draft, now=now)


def issue_prepared(
    session: Session, services: Services, draft: PreparedPass, *, now: datetime
) -> IssuedPass:
    """Sign and store a prepared pass (as :func:`issue_pass` does)."""
    _place(session, services, draft, now)
    _check_one_live(session, draft.pass_type, draft.keys)
    return _store_draft(session, services, draft, now)


def _import_draft(
    session: Session, services: Services, type_id: object, holder: Mapping[str, str],
    key: str | None, *, actor: str, now: datetime,
) -> _Draft:  # fmt: skip
    draft = prepare_pass(services, type_id=type_id, holder=holder, actor=actor, now=now,
                         external_key=key)  # fmt: skip
    return _place(session, services, draft, now)


def issue_passes(
    session: Session,
    services: Services,
    *,
    type_id: object,
    holders: Sequence[tuple[Mapping[str, str], str | None]],
    actor: str,
    now: datetime,
) -> list[IssuedPass]:
    """Many passes of one type (holder, external key) with a few statements, not a few each.

    For imports: the passes, their claim links, their audit entries and their
    plate-and-zone keys go in as one multi-row statement each. Live permits of the
    same plates were found by the import's check; one issued since is refused by the
    unique constraint on the keys (the batch rolls back). A pass whose drawn slot a
    concurrent issuer took meanwhile is inserted by nobody and then issued on its own.
    """
    drafts = [_import_draft(session, services, type_id, holder, key, actor=actor, now=now)
              for holder, key in holders]  # fmt: skip
    rows, tokens = [], []
    for draft in drafts:
        idx = services.open_lists.draw(draft.status_list)
        services.open_lists.mark(draft.status_list, idx)  # not drawn twice in this batch
        tokens.append(draft.sign(services, idx, now))
        rows.append({**draft.values, "status_idx": idx, "token": tokens[-1]})
    connection = session.connection()
    stored: dict[str, int] = {}
    if rows:
        insert_many = _INSERT_MANY[connection.dialect.name]
        found = connection.execute(insert_many, rows).all()
        stored = {serial: int(i) for i, serial in found}
    issued: list[IssuedPass] = []
    links, entries = [], []
    keys: list[dict[str, object]] = []
    for draft, token in zip(drafts, tokens, strict=True):
        pass_id = stored.get(str(draft.values["serial"]))
        if pass_id is None:  # its slot went to another issuer: this one alone, anew
            issued.append(_store_draft(session, services, draft, now))
            continue
        links.append({"pass_id": pass_id, **draft.claim_link})
        entries.append(draft.entry)
        keys.extend({"pass_id": pass_id, "value": key} for key in draft.keys)
        metrics.count_pass(session, "issued", draft.pass_type.id)
        issued.append(draft.issued(token, pass_id, now))
    if keys:  # once the ids are known; in this transaction, so all or nothing
        try:
            connection.execute(_INSERT_KEYS, keys)
        except IntegrityError as exc:
            raise _unique_violation(exc, None) from exc
    if links:
        connection.execute(_INSERT_CLAIM_LINK, links)
        connection.execute(audit.INSERT_ENTRY_MANY, entries)
    return issued


def _new_claim_link(services: Services, *, now: datetime) -> tuple[str, dict[str, object]]:
    """A claim secret (192 bits, shown once) and the values of its stored row (its hash)."""
    secret = secrets.token_urlsafe(24)
    return secret, {
        "token_hash": hash_secret(secret),
        "expires_at": now + timedelta(seconds=services.settings.claim_link_lifetime),
        "created_at": now,
    }


def replace_claim_link(
    session: Session,
    services: Services,
    serial: object,
    *,
    reason: str | None = None,
    actor: str,
    now: datetime,
) -> IssuedPass:
    """A new claim link for a holder who lost theirs; every older link now says "replaced".

    For a link that got lost or reached the wrong person: the pass, its token and
    its wallet copies stay as they are (a lost phone is a reissue instead).
    """
    check_reason(reason)
    row = stored_pass(session, serial, for_update=True)
    if row.state == PassState.REVOKED:
        raise StateConflictError(f"pass {row.serial} is revoked; its links stay closed")
    live = session.scalars(
        select(ClaimLinkRow).where(
            ClaimLinkRow.pass_id == row.id, ClaimLinkRow.replaced_at.is_(None)
        )
    ).all()
    for link in live:
        link.replaced_at = now
    replaced = len(live)
    secret, values = _new_claim_link(services, now=now)
    session.add(ClaimLinkRow(pass_id=row.id, **values))
    audit.record(
        session,
        key=services.audit_key,
        actor=actor,
        action="pass.claim_link_replaced",
        target=row.serial,
        details={"reason": reason, "links_replaced": replaced},
        now=now,
    )
    session.flush()
    return IssuedPass(record=pass_record(row), claim_secret=secret, pass_id=row.id)


def get_pass(session: Session, serial: object) -> PassRecord:
    """One pass by its serial.

    :raises NotFoundError: no such pass (or not a serial at all).
    """
    return pass_record(stored_pass(session, serial))


def stored_pass(session: Session, serial: object, *, for_update: bool = False) -> PassRow:
    """The stored row of a pass, for the services' own use (web and cli get values)."""
    if not isinstance(serial, str) or not SERIAL_RE.fullmatch(serial):
        raise NotFoundError("no such pass")  # nor sent to the database (NUL, huge, ...)
    query = select(PassRow).where(PassRow.serial == serial)
    if for_update:
        query = query.with_for_update(of=PassRow)
    row = session.scalars(query).first()
    if row is None:
        raise NotFoundError(f"no pass with serial {serial}")
    return row


def check_reason(reason: object) -> None:
    if reason is not None and (
        not isinstance(reason, str)
        or len(reason) > MAX_REASON_LENGTH
        or has_control_characters(reason)
    ):
        raise InputError(
            f"reason must be plain text of at most {MAX_REASON_LENGTH} characters", field="reason"
        )


def change_state(
    session: Session,
    services: Services,
    serial: object,
    *,
    action: str,
    reason: str | None,
    actor: str,
    now: datetime,
) -> PassRecord:
    """Revoke, suspend or reinstate; the pass's status list changes in the same transaction."""
    check_reason(reason)
    if action not in Action.__members__.values():
        raise InputError(f"action must be one of {', '.join(Action)}", field="action")
    act = Action(action)
    row = stored_pass(session, serial, for_update=True)
    suspendable = services.pass_type(row.pass_type).suspendable
    if act is Action.SUSPEND and not suspendable:
        raise StateConflictError(f"{row.pass_type} passes cannot be suspended, only revoked")
    new_state = transition(row.state, act, suspendable=suspendable)
    if new_state is None:
        raise StateConflictError(f"pass {row.serial} is {row.state}; it cannot be {act.done}")
    # The list's row lock orders changes: versions commit in the order they are
    # taken, which publication relies on (see publishing.changed_status_list).
    version = session.execute(
        update(StatusListRow)
        .where(StatusListRow.id == row.status_list_id)
        .values(version=StatusListRow.version + 1)
        .returning(StatusListRow.version)
    ).scalar_one()
    row.state = new_state.value
    row.reason = reason
    row.updated_at = now
    row.status_version = version
    if new_state is PassState.REVOKED:  # its plates are free for another permit at once
        release_plates(session, row.id)
    audit.record(
        session,
        key=services.audit_key,
        actor=actor,
        action=f"pass.{action}",
        target=row.serial,
        details={"reason": reason, "state": new_state},
        now=now,
    )
    outbox.pass_changed(session, services, row, now=now)
    metrics.count_pass(session, act.value, row.pass_type)
    session.flush()
    return pass_record(row)


def reissue_pass(
    session: Session,
    services: Services,
    serial: object,
    *,
    reason: str | None,
    actor: str,
    now: datetime,
    changes: Mapping[str, object] | None = None,
) -> IssuedPass:
    """A new serial and token for the holder; the old pass is revoked.

    Lost phone: the holder stays as it is. A new car: ``changes`` ({"plate": "D-XY 1"})
    are the holder fields the new pass has instead, read and checked as at issue; the
    revocation frees the old plates at once (change_state), before the new ones are
    taken, so the new pass may keep the plates it does not change.
    """
    old = stored_pass(session, serial, for_update=True)
    if old.state == PassState.REVOKED:
        raise StateConflictError(f"pass {old.serial} is revoked; issue a new pass instead")
    if old.replaced_by is not None:  # renewed: the successor is the holder's pass now
        raise StateConflictError(
            f"pass {old.serial} was renewed as {old.replaced_by}; reissue that one instead"
        )
    # Revoked first: the new pass may take the old one's plate and zone (one live
    # permit each). Both happen in this transaction, or neither.
    change_state(
        session,
        services,
        old.serial,
        action="revoke",
        reason=reason or "reissued",
        actor=actor,
        now=now,
    )
    new = issue_pass(
        session,
        services,
        type_id=old.pass_type,
        holder={**old.holder, **(changes or {})},
        valid_until=max(old.valid_until, now + timedelta(minutes=1)),
        actor=actor,
        now=now,
        replaces=old.serial,
        may_run_until=old.valid_until,
    )
    old.replaced_by = new.record.serial
    metrics.count_pass(session, "reissued", old.pass_type)
    session.flush()
    return new


@dataclass(frozen=True)
class StatusSlot:
    """Where a pass's status bit sits and its wallet update tag: for staff's diagnosis."""

    list_name: str
    idx: int
    update_tag: int


def status_slot(session: Session, serial: object) -> StatusSlot:
    row = stored_pass(session, serial)
    return StatusSlot(list_name=row.status_list.name, idx=row.status_idx, update_tag=row.update_tag)


@dataclass(frozen=True)
class PassPage:
    """One page of a listing and how many passes match in all."""

    items: Sequence[PassRecord]
    total: int


def list_passes(
    session: Session,
    *,
    type_id: str | None = None,
    state: str | None = None,
    text: str | None = None,
    limit: int = 50,
    offset: int = 0,
    expiring_within: timedelta | None = None,
    now: datetime | None = None,
) -> PassPage:
    """Passes newest first, filtered by type, state and holder text.

    With ``expiring_within`` (and ``now``): only passes that are not revoked and
    run out in that time from now, soonest first, for renewals.
    """
    if state is not None and state not in PASS_STATES:
        raise InputError(f"state must be one of {', '.join(PASS_STATES)}", field="state")
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIST_LIMIT}", field="limit")
    if offset < 0:
        raise InputError("offset must not be negative", field="offset")
    query = select(PassRow)
    if type_id:
        query = query.where(PassRow.pass_type == type_id)
    if state:
        query = query.where(PassRow.state == state)
    if text and (len(text) > 200 or has_control_characters(text)):
        raise InputError("the search text must be plain text of at most 200 characters", field="q")
    if text:
        needle = text.strip().lower()
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(
            or_(
                PassRow.holder_search.like(f"%{escaped}%", escape="\\"),
                PassRow.serial == text.strip(),
            )
        )
    order: UnaryExpression[Any] = PassRow.id.desc()
    if expiring_within is not None:
        if now is None or not timedelta(0) < expiring_within <= MAX_EXPIRING_WINDOW:
            raise InputError("expiring within must be 1 to 366 days", field="within")
        query = query.where(
            PassRow.state != PassState.REVOKED.value,
            PassRow.valid_until >= now,
            PassRow.valid_until <= now + expiring_within,
        )
        order = PassRow.valid_until.asc()
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(order, PassRow.id).limit(limit).offset(offset)).all()
    return PassPage(items=[pass_record(row) for row in rows], total=total)


def pass_by_claim_secret(session: Session, secret: str, *, now: datetime) -> PassRecord:
    """The pass a citizen's claim link opens; an unknown or expired link finds nothing."""
    return pass_record(_claimed(session, secret, now=now))


def wallet_pass_by_claim_secret(
    session: Session, services: Services, secret: str, *, now: datetime
) -> WalletPass:
    """The pass behind a claim link, as the wallets and the printable card show it."""
    return wallets.wallet_pass(services, _claimed(session, secret, now=now))


def _claimed(session: Session, secret: str, *, now: datetime) -> PassRow:
    if not isinstance(secret, str) or not 16 <= len(secret) <= 128:
        raise NotFoundError("this link is not valid")
    link = session.scalars(
        select(ClaimLinkRow).where(ClaimLinkRow.token_hash == hash_secret(secret))
    ).first()
    if link is not None and link.replaced_at is not None:
        raise ClaimLinkReplacedError("this link was replaced by a newer one")
    if link is None or link.expires_at <= now:
        raise NotFoundError("this link is not valid or has expired")
    return link.pass_
