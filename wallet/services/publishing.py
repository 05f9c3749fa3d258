"""Publishing what verifiers download: status list tokens and the trust bundle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from wallet.bundle import TrustBundle, sign_bundle
from wallet.keys import KeyRole, PublicKey, SigningKey
from wallet.passtypes import PassType
from wallet.status import StatusList
from wallet.tokens import sign_status_list_token


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
