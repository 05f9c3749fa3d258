"""Publishing what verifiers download: status list tokens and the trust bundle."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from wallet.bundle import TrustBundle, sign_bundle
from wallet.codec import b64url_decode, parse_json_object
from wallet.errors import NotFoundError
from wallet.keys import KeyRole, PublicKey, SigningKey
from wallet.passtypes import PassType
from wallet.services.context import Services
from wallet.status import INVALID, SUSPENDED, VALID, StatusList
from wallet.store.db import Serialised, serialise
from wallet.store.models import CounterRow, PassRow, PublishedBundleRow, StatusListRow
from wallet.tokens import (
    sign_status_list_token,
)

_STATUS_VALUES = {"valid": VALID, "revoked": INVALID, "suspended": SUSPENDED}


def status_list_uri(public_url: str, list_id: str) -> str:
    """Where a status list token is published; pass tokens name this URI."""
    return f"{public_url}/status/{list_id}"


def sign_status_lists(
    lists: Mapping[str, tuple[StatusList, SigningKey]],
    *,
    issuer: str,
    now: datetime,
    lifetime: timedelta,
    ttl: timedelta,
) -> dict[str, str]:
    """Sign each list (by URI) with its key; returns URI -> status list token."""
    return {
        uri: sign_status_list_token(
            key=key,
            issuer=issuer,
            uri=uri,
            status_list=status_list,
            issued_at=now,
            lifetime=lifetime,
            ttl=ttl,
        )
        for uri, (status_list, key) in lists.items()
    }


def export_bundle(
    *,
    issuer: str,
    version: int,
    keys: Iterable[PublicKey],
    status_tokens: Mapping[str, str],
    pass_types: Mapping[str, PassType],
    root: SigningKey,
    now: datetime,
    lifetime: timedelta,
) -> str:
    """A signed bundle with every pass key (revoked ones too, so devices name them)."""
    bundle = TrustBundle(
        issuer=issuer,
        version=version,
        issued_at=now,
        expires_at=now + lifetime,
        keys=tuple(k for k in keys if k.info.role is KeyRole.PASS),
        status_lists=dict(status_tokens),
        pass_types={type_id: t.display() for type_id, t in pass_types.items()},
    )
    return sign_bundle(bundle, root)


# -- from the database --------------------------------------------------------
# Status lists are derived from the passes that point into them, so a list can
# never disagree with the passes. A signed token is cached on the list's row and
# rebuilt when a status changed (the row's version moved on) or when half of
# its lifetime has gone, so a device always gets at least half a lifetime.
#
# A rebuild starts from the bits of the last published token, kept on the row,
# and applies only the passes whose status changed since (each pass records the
# list version of its last change; an index finds them): its cost follows the
# changes, not the passes. It reads a snapshot, so it runs in a read
# transaction, and a short write stores the result unless a newer one is
# there already: publishing never holds SQLite's write lock for long, nor a
# row lock that issuers or revokers wait on.


def _fresh(row: StatusListRow, *, now: datetime, lifetime: timedelta) -> bool:
    """Unchanged since it was signed, and with at least half of its life ahead.

    Its own life counts, not only today's setting: a list signed by a shell with a
    shorter WALLET_STATUS_LIST_LIFETIME must not be served until devices call it stale.
    """
    if row.published_token is None or row.published_at is None:
        return False
    if row.published_version != row.version:
        return False
    own_life = _token_expiry(row.published_token) - row.published_at
    return row.published_at <= now < row.published_at + min(own_life, lifetime) / 2


@functools.lru_cache(maxsize=256)
def _token_expiry(token: str) -> datetime:
    """The ``exp`` of a token this service signed (read, not verified: it is our own)."""
    payload = parse_json_object(b64url_decode(token.split(".")[1], what="payload"), what="payload")
    return datetime.fromtimestamp(int(payload["exp"]), UTC)


def build_status_list(session: Session, row: StatusListRow) -> StatusList:
    """The list from every pass in it, ignoring stored bits: the reference rebuild."""
    status_list = StatusList(row.size, bits=row.bits)
    changed = session.execute(
        select(PassRow.status_idx, PassRow.state)
        .where(PassRow.status_list_id == row.id)
        .where(PassRow.state != "valid")
    )
    for idx, state in changed:
        status_list.set(idx, _STATUS_VALUES[state])
    return status_list


def changed_status_list(session: Session, row: StatusListRow) -> tuple[StatusList, int]:
    """The list as of now from its last published bits and the passes changed since,
    and the version it includes.

    Versions are taken under the list's row lock and committed in that order,
    so whatever one statement sees of them is every change up to the highest
    it sees: that is the version of the result, even when it is newer than the
    row read a moment before.
    """
    bits = row.published_bits
    if bits is None or len(bits) * 8 != row.size * row.bits:
        # From nothing: passes changed before migration 0003 carry version 0.
        status_list, since = StatusList(row.size, bits=row.bits), -1
    else:
        status_list, since = StatusList.from_bytes(bits, row.bits), row.published_version
    version = row.version
    changes = session.execute(
        select(PassRow.status_idx, PassRow.state, PassRow.status_version)
        .where(PassRow.status_list_id == row.id)
        .where(PassRow.status_version > since)
    )
    for idx, state, changed_at in changes:
        status_list.set(idx, _STATUS_VALUES[state])
        version = max(version, changed_at or 0)
    return status_list, version


# "<pass type>-<n>", as passes.py names new lists (pass type ids: passtypes._ID_RE).
_LIST_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}-[0-9]{1,9}")


def status_list_row(session: Session, name: str) -> StatusListRow:
    if not _LIST_NAME_RE.fullmatch(name):  # never send NUL or other junk to the database
        raise NotFoundError(f"no status list {name[:40]!r}")
    row = session.scalars(select(StatusListRow).where(StatusListRow.name == name)).first()
    if row is None:
        raise NotFoundError(f"no status list {name}")
    return row


@dataclass(frozen=True)
class PublishedList:
    """A status list as the edges serve and report it: its signed token and versions."""

    name: str
    version: int  # of its content: bumped by every state change
    published_version: int  # the content version its token carries
    published_at: datetime | None
    token: str | None

    @classmethod
    def of(cls, row: StatusListRow) -> PublishedList:
        return cls(
            name=row.name,
            version=row.version,
            published_version=row.published_version,
            published_at=row.published_at,
            token=row.published_token,
        )


@dataclass(frozen=True)
class PublishedBundle:
    token: str
    version: int
    expires_at: datetime


def published_list(session: Session, name: str) -> PublishedList:
    """A status list's current state; :raises NotFoundError: no such list."""
    return PublishedList.of(status_list_row(session, name))


def cached_status_list(
    session: Session, services: Services, name: str, *, now: datetime
) -> PublishedList | None:
    """The list if its published token is current (read-only), else None."""
    row = status_list_row(session, name)
    lifetime = timedelta(seconds=services.settings.status_list_lifetime)
    return PublishedList.of(row) if _fresh(row, now=now, lifetime=lifetime) else None


@dataclass(frozen=True)
class SignedStatusList:
    """A list token signed from a snapshot, waiting to be stored."""

    name: str
    version: int
    bits: bytes
    token: str
    signed_at: datetime
    # The signing time of the token it replaces, as read: another server that stored
    # the same version meanwhile keeps its token (one token per ETag on every server).
    replaces: datetime | None = None


def prepare_status_list(
    session: Session, services: Services, name: str, *, now: datetime, force: bool = False
) -> SignedStatusList | None:
    """Sign the list anew if it changed or ages (None if its token is current); reads only."""
    row = status_list_row(session, name)
    settings = services.settings
    lifetime = timedelta(seconds=settings.status_list_lifetime)
    if not force and _fresh(row, now=now, lifetime=lifetime):
        return None
    status_list, version = changed_status_list(session, row)
    key = services.keys.current_signing_key(row.pass_type, now=now)
    (token,) = sign_status_lists(
        {status_list_uri(settings.public_url, row.name): (status_list, key)},
        issuer=settings.issuer,
        now=now,
        lifetime=lifetime,
        ttl=timedelta(seconds=settings.status_list_ttl),
    ).values()
    return SignedStatusList(
        name=row.name,
        version=version,
        bits=status_list.to_bytes(),
        token=token,
        signed_at=now,
        replaces=row.published_at if row.published_version == version else None,
    )


def store_status_list(session: Session, signed: SignedStatusList) -> StatusListRow:
    """Keep the signed list unless the row has a newer one or another publisher's of the
    same version (signed from the same read: every server of a cluster may re-sign a
    changed list at once); returns the row with the one kept. One short UPDATE: compare
    and set on what was read, so the token of a version changes only when it ages."""
    lists = StatusListRow
    same_as_read = (
        lists.published_at.is_(None)
        if signed.replaces is None
        else lists.published_at == signed.replaces
    )
    session.execute(
        update(lists)
        .where(lists.name == signed.name)
        .where(
            or_(
                lists.published_version < signed.version,
                and_(lists.published_version == signed.version, same_as_read),
                lists.published_token.is_(None),
            )
        )
        .values(
            published_token=signed.token,
            published_version=signed.version,
            published_at=signed.signed_at,
            published_bits=signed.bits,
        )
        .execution_options(synchronize_session=False)
    )
    row = status_list_row(session, signed.name)
    session.refresh(row)
    return row


def publish_status_list(
    session: Session, services: Services, name: str, *, now: datetime, force: bool = False
) -> PublishedList:
    """Sign the list anew if it changed or ages, in the caller's (write) transaction."""
    return PublishedList.of(_publish_status_list(session, services, name, now=now, force=force))


def _publish_status_list(
    session: Session, services: Services, name: str, *, now: datetime, force: bool
) -> StatusListRow:
    signed = prepare_status_list(session, services, name, now=now, force=force)
    if signed is None:
        return status_list_row(session, name)
    return store_status_list(session, signed)


def refresh_status_lists(
    transaction: Callable[[bool], AbstractContextManager[Session]],
    services: Services,
    names: Iterable[str],
    *,
    now: datetime,
) -> None:
    """Re-sign the lists that changed or age: each from a read transaction, stored by
    a short write (``transaction(write)`` opens and commits one, as the edge does)."""
    for name in names:
        with transaction(False) as session:
            signed = prepare_status_list(session, services, name, now=now)
        if signed is not None:
            with transaction(True) as session:
                store_status_list(session, signed)


def list_names(session: Session) -> list[str]:
    return list(session.scalars(select(StatusListRow.name).order_by(StatusListRow.id)))


def publish_all(
    session: Session, services: Services, *, now: datetime, force: bool = False
) -> list[StatusListRow]:
    names = list_names(session)
    return [_publish_status_list(session, services, n, now=now, force=force) for n in names]


def _bundle_fingerprint(services: Services, lists: Iterable[StatusListRow]) -> str:
    material = {
        "lists": [(r.name, r.published_version, r.published_token) for r in lists],
        "keys": [k.info.to_json() for k in services.keys.public_keys()],
        "types": {t: p.display() for t, p in sorted(services.pass_types.items())},
        "issuer": services.settings.issuer,
    }
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _bundle_fresh(row: PublishedBundleRow, *, now: datetime, lifetime: timedelta) -> bool:
    """Whether the stored bundle still has at least half of its own life ahead.

    Its own: the stored one may have been signed with another lifetime (a CLI
    with a shorter WALLET_BUNDLE_LIFETIME than the server's); judging it by
    today's setting alone served bundles every device refuses as expired.
    """
    own_life = row.expires_at - row.issued_at
    return row.issued_at <= now < row.issued_at + min(own_life, lifetime) / 2


def cached_bundle(session: Session, services: Services, *, now: datetime) -> str | None:
    """The published bundle if nothing it depends on changed (read-only), else None."""
    cached = session.get(PublishedBundleRow, 1)
    if cached is None:
        return None
    lists = session.scalars(select(StatusListRow).order_by(StatusListRow.id)).all()
    lifetime = timedelta(seconds=services.settings.status_list_lifetime)
    if not all(_fresh(r, now=now, lifetime=lifetime) for r in lists):
        return None
    bundle_life = timedelta(seconds=services.settings.bundle_lifetime)
    if cached.fingerprint != _bundle_fingerprint(services, lists):
        return None
    if not _bundle_fresh(cached, now=now, lifetime=bundle_life):
        return None
    return cached.token


_counters = CounterRow.__table__
_BUMP_COUNTER = {
    name: dialect.insert(_counters)
    .values(name=bindparam("name"), value=1)
    .on_conflict_do_update(index_elements=["name"], set_={"value": _counters.c.value + 1})
    .returning(_counters.c.value)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def next_counter(session: Session, name: str) -> int:
    """Increment a shared counter in one upsert; its row lock, held until commit,
    orders concurrent callers, and the very first two callers cannot collide."""
    statement = _BUMP_COUNTER[session.get_bind().dialect.name]
    return int(session.connection().execute(statement, {"name": name}).scalar_one())


def publish_bundle(
    session: Session, services: Services, *, now: datetime, force: bool = False
) -> PublishedBundle:
    """Refresh every status list, then sign a new bundle if anything changed."""
    row = _publish_bundle(session, services, now=now, force=force)
    return PublishedBundle(token=row.token, version=row.version, expires_at=row.expires_at)


def _publish_bundle(
    session: Session, services: Services, *, now: datetime, force: bool
) -> PublishedBundleRow:
    lists = publish_all(session, services, now=now)
    fingerprint = _bundle_fingerprint(services, lists)
    bundle_life = timedelta(seconds=services.settings.bundle_lifetime)

    def reusable(row: PublishedBundleRow | None) -> bool:
        return (
            not force
            and row is not None
            and row.fingerprint == fingerprint
            and _bundle_fresh(row, now=now, lifetime=bundle_life)
        )

    # One publisher at a time, from here on: a row lock alone cannot order them, as
    # before the first bundle there is no row to lock (one that found none took the
    # counter, then waited for the new row, locked by one waiting for the counter).
    # The lists above stay outside it: a revocation holds one while it waits for no one.
    serialise(session, Serialised.BUNDLE)
    cached = session.get(PublishedBundleRow, 1, populate_existing=True)
    if reusable(cached):
        assert cached is not None
        return cached
    settings = services.settings
    version = next_counter(session, "bundle")
    token = export_bundle(
        issuer=settings.issuer,
        version=version,
        keys=services.keys.public_keys(),
        status_tokens={
            status_list_uri(settings.public_url, r.name): r.published_token
            for r in lists
            if r.published_token is not None
        },
        pass_types=services.pass_types,
        root=services.keys.root_key(now=now),
        now=now,
        lifetime=bundle_life,
    )
    if cached is None:
        cached = PublishedBundleRow(id=1)
        session.add(cached)
    cached.version = version
    cached.fingerprint = fingerprint
    cached.token = token
    cached.issued_at = now
    cached.expires_at = now + bundle_life
    session.flush()
    return cached
