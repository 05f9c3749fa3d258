"""Publishing what verifiers download: status list tokens and the trust bundle."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from wallet.bundle import TrustBundle, sign_bundle
from wallet.errors import NotFoundError
from wallet.keys import KeyRole, PublicKey, SigningKey
from wallet.passtypes import PassType
from wallet.services.context import Services
from wallet.status import INVALID, SUSPENDED, VALID, StatusList
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


def _fresh(row: StatusListRow, *, now: datetime, lifetime: timedelta) -> bool:
    return (
        row.published_token is not None
        and row.published_version == row.version
        and row.published_at is not None
        and now < row.published_at + lifetime / 2
    )


def build_status_list(session: Session, row: StatusListRow) -> StatusList:
    status_list = StatusList(row.size, bits=row.bits)
    changed = session.execute(
        select(PassRow.status_idx, PassRow.state)
        .where(PassRow.status_list_id == row.id)
        .where(PassRow.state != "valid")
    )
    for idx, state in changed:
        status_list.set(idx, _STATUS_VALUES[state])
    return status_list


# "<pass type>-<n>", as passes.py names new lists (pass type ids: passtypes._ID_RE).
_LIST_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}-[0-9]{1,9}")


def status_list_row(session: Session, name: str, *, for_update: bool = False) -> StatusListRow:
    if not _LIST_NAME_RE.fullmatch(name):  # never send NUL or other junk to the database
        raise NotFoundError(f"no status list {name[:40]!r}")
    query = select(StatusListRow).where(StatusListRow.name == name)
    if for_update:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        raise NotFoundError(f"no status list {name}")
    return row


def cached_status_list(
    session: Session, services: Services, name: str, *, now: datetime
) -> StatusListRow | None:
    """The list row if its published token is current (read-only), else None."""
    row = status_list_row(session, name)
    lifetime = timedelta(seconds=services.settings.status_list_lifetime)
    return row if _fresh(row, now=now, lifetime=lifetime) else None


def publish_status_list(
    session: Session, services: Services, name: str, *, now: datetime, force: bool = False
) -> StatusListRow:
    """Sign the list anew if it changed or ages; needs a write transaction."""
    row = status_list_row(session, name, for_update=True)
    settings = services.settings
    lifetime = timedelta(seconds=settings.status_list_lifetime)
    if not force and _fresh(row, now=now, lifetime=lifetime):
        return row
    version = row.version  # the list below includes every change up to this version
    status_list = build_status_list(session, row)
    key = services.keys.current_signing_key(row.pass_type, now=now)
    (token,) = sign_status_lists(
        {status_list_uri(settings.public_url, row.name): (status_list, key)},
        issuer=settings.issuer,
        now=now,
        lifetime=lifetime,
        ttl=timedelta(seconds=settings.status_list_ttl),
    ).values()
    row.published_token = token
    row.published_version = version
    row.published_at = now
    session.flush()
    return row


def publish_all(
    session: Session, services: Services, *, now: datetime, force: bool = False
) -> list[StatusListRow]:
    names = session.scalars(select(StatusListRow.name).order_by(StatusListRow.id)).all()
    return [publish_status_list(session, services, n, now=now, force=force) for n in names]


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
) -> PublishedBundleRow:
    """Refresh every status list, then sign a new bundle if anything changed."""
    lists = publish_all(session, services, now=now)
    fingerprint = _bundle_fingerprint(services, lists)
    cached = session.get(PublishedBundleRow, 1, with_for_update=True)
    bundle_life = timedelta(seconds=services.settings.bundle_lifetime)
    if (
        not force
        and cached is not None
        and cached.fingerprint == fingerprint
        and _bundle_fresh(cached, now=now, lifetime=bundle_life)
    ):
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
