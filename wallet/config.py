"""Configuration, read once at the edge (CLI context or app factory).

Nothing here reads the environment at import time: :meth:`Settings.from_env`
takes the mapping to read, so tests pass an explicit one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wallet.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be 1 or 0 (got {value!r})")


def _count(env: Mapping[str, str], name: str, *, default: int = 0, most: int = 5) -> int:
    raw = env.get(name, "").strip() or str(default)
    if not raw.isdigit() or int(raw) > most:
        raise ConfigError(f"{name} must be a whole number from 0 to {most} (got {raw!r})")
    return int(raw)


def _seconds(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of seconds (got {raw!r})") from None
    if not 60 <= value <= 366 * 86400:
        raise ConfigError(f"{name} must be between 60 seconds and one year (got {value})")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the service and the admin CLI are configured with."""

    public_url: str = "http://127.0.0.1:8000"
    issuer: str = "http://127.0.0.1:8000"
    signing_keys_dir: Path = PROJECT_ROOT / "signing_keys"
    pass_types_dir: Path = PROJECT_ROOT / "templates" / "passes"
    key_passphrase: bytes | None = field(default=None, repr=False)
    dev_mode: bool = False
    # How long a published status list token stays valid, and how soon
    # verifiers should fetch a new one (the draft's `exp` and `ttl`).
    status_list_lifetime: int = 2 * 86400
    status_list_ttl: int = 3600
    bundle_lifetime: int = 7 * 86400
    instance_dir: Path = PROJECT_ROOT / "instance"
    # Empty means SQLite in WAL mode at <instance_dir>/wallet.sqlite3.
    database_url: str = ""
    redis_url: str = ""
    secret_key: str = field(default="", repr=False)
    claim_link_lifetime: int = 90 * 86400
    bind: str = "127.0.0.1:8000"
    # How many reverse proxies (the TLS proxy) stand in front of the app; their
    # X-Forwarded-* headers are trusted, so rate limits see the real client.
    trusted_proxies: int = 0
    # Seconds a worker may reuse an API token lookup (0: look up every call).
    api_token_cache: int = 2

    @property
    def database(self) -> str:
        """The database URL to use: the configured one, or the embedded SQLite file."""
        return self.database_url or f"sqlite:///{self.instance_dir / 'wallet.sqlite3'}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from ``WALLET_*`` variables, refusing unusable values."""
        public_url = env.get("WALLET_PUBLIC_URL", cls.public_url).rstrip("/")
        if not _URL_RE.fullmatch(public_url):
            raise ConfigError(
                f"WALLET_PUBLIC_URL must be an http(s) URL like https://pass.example.de "
                f"(got {public_url!r})"
            )
        issuer = env.get("WALLET_ISSUER", public_url).rstrip("/")
        if not _URL_RE.fullmatch(issuer):
            raise ConfigError(f"WALLET_ISSUER must be an http(s) URL (got {issuer!r})")
        passphrase = env.get("WALLET_KEY_PASSPHRASE")
        if passphrase is not None and len(passphrase) < 12:
            raise ConfigError("WALLET_KEY_PASSPHRASE must be at least 12 characters long")
        return cls(
            public_url=public_url,
            issuer=issuer,
            signing_keys_dir=Path(env.get("WALLET_SIGNING_KEYS_DIR", str(cls.signing_keys_dir))),
            pass_types_dir=Path(env.get("WALLET_PASS_TYPES_DIR", str(cls.pass_types_dir))),
            key_passphrase=passphrase.encode() if passphrase else None,
            dev_mode=_flag(env, "WALLET_DEV_MODE"),
            status_list_lifetime=_seconds(
                env, "WALLET_STATUS_LIST_LIFETIME", cls.status_list_lifetime
            ),
            status_list_ttl=_seconds(env, "WALLET_STATUS_LIST_TTL", cls.status_list_ttl),
            bundle_lifetime=_seconds(env, "WALLET_BUNDLE_LIFETIME", cls.bundle_lifetime),
            instance_dir=Path(env.get("WALLET_INSTANCE_DIR", str(cls.instance_dir))),
            database_url=env.get("WALLET_DATABASE_URL", ""),
            redis_url=env.get("WALLET_REDIS_URL", ""),
            secret_key=env.get("WALLET_SECRET_KEY", ""),
            claim_link_lifetime=_seconds(
                env, "WALLET_CLAIM_LINK_LIFETIME", cls.claim_link_lifetime
            ),
            bind=env.get("WALLET_BIND", cls.bind),
            trusted_proxies=_count(env, "WALLET_TRUSTED_PROXIES"),
            api_token_cache=_count(env, "WALLET_API_TOKEN_CACHE", default=2, most=60),
        )
