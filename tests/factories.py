"""Test doubles that are real: ephemeral keys, genuine tokens, signed bundles.

Nothing here reads the real keys folder; every key lives in memory or in a
pytest temporary directory.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wallet.bundle import TrustBundle, sign_bundle
from wallet.config import PROJECT_ROOT
from wallet.keys import KeyRole, KeyState, PublicKey, SigningKey, generate_key
from wallet.passtypes import PassType, load_pass_types
from wallet.qrtext import encode_qr_text
from wallet.services.publishing import sign_status_lists
from wallet.status import MIN_LIST_SIZE, StatusList
from wallet.tokens import (
    sign_pass_token,
)
from wallet.verifier import Verifier

ISSUER = "https://pass.stadt-musterstadt.de"
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
PASS_TYPES: dict[str, PassType] = load_pass_types(PROJECT_ROOT / "templates" / "passes")
HOLDERS: Mapping[str, Mapping[str, str]] = {
    "library": {"card_number": "100200300400", "name": "Erika Mustermann"},
    "parking": {"plate": "D-AB 1234", "zone": "12"},
}


_PLATE_NUMBERS = itertools.count(1)


def fresh_holder(type_id: str) -> dict[str, str]:
    """A holder for a new pass: parking gets a plate no other live permit has
    (one permit per plate and zone), library the usual card."""
    if type_id != "parking":
        return dict(HOLDERS[type_id])
    n = next(_PLATE_NUMBERS)
    return {"plate": f"D-{'ABCDEFGHJK'[n // 9999 % 10]}X {n % 9999 + 1}", "zone": "12"}


def status_uri(type_id: str) -> str:
    return f"{ISSUER}/status/{type_id}-1"


@dataclass
class City:
    """An issuer with a root key, one pass key, a status list per pass type."""

    now: datetime = NOW
    root: SigningKey = field(init=False)
    key: SigningKey = field(init=False)
    extra_keys: list[SigningKey] = field(default_factory=list)
    lists: dict[str, StatusList] = field(init=False)
    list_lifetime: timedelta = timedelta(days=2)
    version: int = 1

    def __post_init__(self) -> None:
        self.root = generate_key(role=KeyRole.ROOT, now=self.now - timedelta(days=30))
        self.key = generate_key(pass_types=PASS_TYPES, now=self.now - timedelta(days=30))
        self.lists = {
            status_uri(t): StatusList(MIN_LIST_SIZE, bits=p.status_bits)
            for t, p in PASS_TYPES.items()
        }

    def add_key(self, **kwargs: Any) -> SigningKey:
        kwargs.setdefault("pass_types", PASS_TYPES)
        kwargs.setdefault("now", self.now - timedelta(days=10))
        key = generate_key(**kwargs)
        self.extra_keys.append(key)
        return key

    def set_key_info(self, key: SigningKey, **changes: Any) -> SigningKey:
        """Change a key's metadata as the bundle will publish it."""
        changed = replace(key, info=replace(key.info, **changes))
        if key.kid == self.key.kid:
            self.key = changed
        self.extra_keys = [changed if k.kid == key.kid else k for k in self.extra_keys]
        return changed

    def issue(
        self,
        type_id: str = "library",
        *,
        key: SigningKey | None = None,
        idx: int = 4711,
        issued_at: datetime | None = None,
        expires_at: datetime | None = None,
        not_before: datetime | None = None,
        issuer: str = ISSUER,
        uri: str | None = None,
    ) -> str:
        issued_at = issued_at or self.now - timedelta(days=1)
        return sign_pass_token(
            key=key or self.key,
            issuer=issuer,
            serial="SERIAL0123456789",
            pass_type=type_id,
            holder=HOLDERS[type_id],
            issued_at=issued_at,
            expires_at=expires_at or PASS_TYPES[type_id].valid_until(issued_at),
            not_before=not_before,
            status_idx=idx,
            status_uri=uri or status_uri(type_id),
        )

    def issue_qr(self, type_id: str = "library", **kwargs: Any) -> str:
        return encode_qr_text(self.issue(type_id, **kwargs))

    def public_keys(self) -> list[PublicKey]:
        return [self.key.public(), *(k.public() for k in self.extra_keys)]

    def status_tokens(self, *, now: datetime | None = None) -> dict[str, str]:
        """Status list tokens signed by the main key at ``now``."""
        return sign_status_lists(
            {uri: (lst, self.key) for uri, lst in self.lists.items()},
            issuer=ISSUER,
            now=now or self.now - timedelta(hours=1),
            lifetime=self.list_lifetime,
            ttl=timedelta(hours=1),
        )

    def bundle(
        self,
        *,
        status_tokens: Mapping[str, str] | None = None,
        version: int | None = None,
        expires_at: datetime | None = None,
        keys: list[PublicKey] | None = None,
    ) -> TrustBundle:
        return TrustBundle(
            issuer=ISSUER,
            version=self.version if version is None else version,
            issued_at=self.now - timedelta(hours=1),
            expires_at=expires_at or self.now + timedelta(days=7),
            keys=tuple(self.public_keys() if keys is None else keys),
            status_lists=dict(self.status_tokens() if status_tokens is None else status_tokens),
            pass_types={t: p.display() for t, p in PASS_TYPES.items()},
        )

    def signed_bundle(self, **kwargs: Any) -> str:
        return sign_bundle(self.bundle(**kwargs), self.root)

    def verifier(self, **kwargs: Any) -> Verifier:
        return Verifier(self.bundle(**kwargs))

    def write_bundle(self, folder: Path, **kwargs: Any) -> tuple[Path, Path]:
        """Write the signed bundle and the root's public key; return both paths."""
        bundle_path, root_path = folder / "bundle.jwt", folder / "root-key.pem"
        bundle_path.write_text(self.signed_bundle(**kwargs) + "\n")
        root_path.write_bytes(self.root.public().pem())
        return bundle_path, root_path


def revoked(key: SigningKey) -> SigningKey:
    return replace(key, info=replace(key.info, state=KeyState.REVOKED))


def genuine_token_without_a_published_list(services: Any, type_id: str) -> str:
    """Signed with the instance's real key, pointing at a status list no bundle holds."""
    from wallet.services.publishing import status_list_uri

    pass_type = services.pass_types[type_id]
    return sign_pass_token(
        key=services.keys.current_signing_key(type_id, now=NOW),
        issuer=services.settings.issuer,
        serial="SERIAL0123456789",
        pass_type=type_id,
        holder=pass_type.token_fields(pass_type.clean_holder(HOLDERS[type_id])),
        issued_at=NOW - timedelta(days=1),
        expires_at=NOW + timedelta(days=30),
        status_idx=5,
        status_uri=status_list_uri(services.settings.public_url, f"{type_id}-999"),
    )


def stored_row(db: Any, serial: str) -> Any:
    """The ORM row behind a pass, for tests of how it is stored (slots, ids).

    Web and cli never see rows; tests of the store's own rules may.
    """
    from wallet.services.passes import stored_pass

    with db.transaction(write=False) as session:
        row = stored_pass(session, serial)
        session.expunge(row)
    return row


def dev_instance_env(folder: Path) -> dict[str, str]:
    """The environment of a development instance in ``folder`` (SQLite), for a child
    process that imports the service (gunicorn's workers do, at start)."""
    import os

    return {
        **os.environ,
        "WALLET_DATABASE_URL": f"sqlite:///{folder / 'wallet.sqlite3'}",
        "WALLET_DEV_MODE": "1",
        "WALLET_INSTANCE_DIR": str(folder / "instance"),
        "WALLET_SIGNING_KEYS_DIR": str(folder / "keys"),
        "WALLET_SECRET_KEY": "k" * 64,
    }


def dev_settings(folder: Path, *, public_url: str = "http://127.0.0.1", **more: Any) -> Any:
    """Development settings with keys and instance folders in ``folder``. The public URL
    is plain HTTP by default: a test browser keeps the session cookie only there."""
    from wallet.config import Settings

    return Settings(
        public_url=public_url,
        issuer="https://pass.stadt-musterstadt.de",
        signing_keys_dir=folder / "keys",
        instance_dir=folder / "instance",
        dev_mode=True,
        secret_key=f"test-secret-key-{folder.name}-0123456789",
        **more,
    )


def dev_services(settings: Any) -> Any:
    """Services over ``settings``' keys folder with a trust root and one pass key for
    every pass type, both a year old (dev mode: unencrypted)."""
    from wallet.keystore import KeyStore
    from wallet.services.context import Services

    keys = KeyStore(settings.signing_keys_dir, passphrase=None, dev_mode=True)
    start = NOW.replace(year=NOW.year - 1)
    keys.generate(alg="ES256", role=KeyRole.ROOT, pass_types=frozenset(), now=start)
    keys.generate(alg="ES256", role=KeyRole.PASS, pass_types=frozenset(PASS_TYPES), now=start)
    return Services(settings=settings, keys=keys, pass_types=PASS_TYPES)


def copied_database(template: Path, folder: Path) -> Any:
    """A migrated SQLite database in ``folder``, copied from the session's template."""
    import shutil

    from wallet.store.db import Database

    shutil.copy(template, folder / "wallet.sqlite3")
    return Database(f"sqlite:///{folder / 'wallet.sqlite3'}")
