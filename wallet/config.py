"""Configuration, read once at the edge (CLI context or app factory).

Nothing here reads the environment at import time: :meth:`Settings.from_env`
takes the mapping to read, so tests pass an explicit one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wallet.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
# Apple's formats: a reverse-DNS Pass Type ID, a 10-character team id.
_PASS_TYPE_ID_RE = re.compile(r"pass(\.[A-Za-z0-9][A-Za-z0-9-]{0,62}){1,10}")
_TEAM_ID_RE = re.compile(r"[A-Z0-9]{10}")
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
    # Apple Wallet: the Pass Type ID certificate, its key and Apple's WWDR
    # intermediate. Unset in development mode: a local dev chain in the
    # instance folder is used (such passes do not install on a real iPhone).
    apple_pass_type_id: str = "pass.de.example.wallet.dev"  # noqa: S105 - an identifier
    apple_team_id: str = "DEVTEAM000"
    apple_pass_cert: Path | None = None
    apple_pass_key: Path | None = None
    apple_pass_key_passphrase: bytes | None = field(default=None, repr=False)
    apple_wwdr_cert: Path | None = None
    # APNs: token auth with a .p8 key when set, else the Pass Type ID certificate.
    apns_url: str = "https://api.push.apple.com"
    apns_key: Path | None = None
    apns_key_id: str = ""
    apns_ca_file: Path | None = None  # trust override (tests, TLS-inspecting proxies)
    # Google Wallet: a service account key file and the issuer id from the Pay console.
    google_service_account: Path | None = None
    google_issuer_id: str = ""
    google_api_url: str = "https://walletobjects.googleapis.com/walletobjects/v1"
    google_token_url: str = ""  # default: the token_uri in the key file
    google_ca_file: Path | None = None
    # E-mail to holders (claim links) over SMTP. The password is read from a file,
    # never from the environment or a command line.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls | tls (implicit, port 465) | none (loopback only)
    smtp_username: str = ""
    smtp_password_file: Path | None = None
    smtp_from: str = ""
    smtp_per_minute: int = 60  # what the city's mail server allows this sender
    smtp_ca_file: Path | None = None
    # Staff sign-in through the city's OpenID Connect provider; unset: local accounts only.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    oidc_client_secret_file: Path | None = None
    oidc_scopes: str = "openid"
    oidc_roles_claim: str = "groups"  # a dotted path reaches into objects (realm_access.roles)
    oidc_roles: tuple[tuple[str, str], ...] = ()  # (group, role), in the order configured
    # Who needs a TOTP code besides the password: enrolled | admins | all; empty: see totp_policy.
    totp_required: str = ""

    # Prometheus metrics on their own listener (host:port), never on the public one;
    # empty: no metrics (see wallet.services.metrics).
    metrics_bind: str = ""

    @property
    def metrics_dir(self) -> Path:
        """Where the web and worker processes of this instance keep their metric files."""
        return self.instance_dir / "metrics"

    @property
    def smtp_enabled(self) -> bool:
        return bool(self.smtp_host)

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer)

    @property
    def totp_policy(self) -> str:
        """Who must give a TOTP code: the setting, else all local accounts when staff sign
        in through the city's provider (local accounts are then for emergencies only),
        else admins; in development mode only accounts that enrolled."""
        if self.totp_required:
            return self.totp_required
        if self.dev_mode:
            return "enrolled"
        return "all" if self.oidc_enabled else "admins"

    def oidc_secret(self) -> str:
        """The OIDC client secret, from WALLET_OIDC_CLIENT_SECRET or the file it names."""
        if self.oidc_client_secret:
            return self.oidc_client_secret
        if self.oidc_client_secret_file is None:
            raise ConfigError(
                "set WALLET_OIDC_CLIENT_SECRET_FILE (a file holding the client secret) "
                "or WALLET_OIDC_CLIENT_SECRET"
            )
        try:
            secret = self.oidc_client_secret_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"WALLET_OIDC_CLIENT_SECRET_FILE {self.oidc_client_secret_file} cannot be read "
                f"({exc.__class__.__name__})"
            ) from None
        if not secret:
            raise ConfigError(
                f"WALLET_OIDC_CLIENT_SECRET_FILE {self.oidc_client_secret_file} is empty"
            )
        return secret

    @property
    def google_enabled(self) -> bool:
        return self.google_service_account is not None and bool(self.google_issuer_id)

    @property
    def apple_configured(self) -> bool:
        """Real Apple credentials given (not the development chain)."""
        return self.apple_pass_cert is not None

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
            metrics_bind=_metrics_bind(env),
            **_apple(env),
            **_google(env),
            **_smtp(env),
            **_oidc(env),
        )


_HOST_PORT_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")


def _metrics_bind(env: Mapping[str, str]) -> str:
    raw = env.get("WALLET_METRICS_BIND", "").strip()
    found = _HOST_PORT_RE.fullmatch(raw)
    if raw and (found is None or not 0 < int(found[2]) < 65536):
        raise ConfigError(
            "WALLET_METRICS_BIND must be an address and port for Prometheus only, "
            f"like 127.0.0.1:9100 (got {raw!r})"
        )
    return raw


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw) if raw else None


def _https(env: Mapping[str, str], name: str, default: str) -> str:
    """An https URL; plain http only to this machine (local stand-ins in tests)."""
    url = env.get(name, "").strip().rstrip("/") or default
    local = url.startswith(("http://127.0.0.1:", "http://localhost:", "http://[::1]:"))
    if not _URL_RE.fullmatch(url) or not (url.startswith("https://") or local):
        raise ConfigError(f"{name} must be an https URL (got {url!r})")
    return url


def _apple(env: Mapping[str, str]) -> dict[str, Any]:
    files = {
        "apple_pass_cert": _path(env, "WALLET_APPLE_PASS_CERT"),
        "apple_pass_key": _path(env, "WALLET_APPLE_PASS_KEY"),
        "apple_wwdr_cert": _path(env, "WALLET_APPLE_WWDR_CERT"),
    }
    given = [name for name, value in files.items() if value is not None]
    if given and len(given) != len(files):
        raise ConfigError(
            "set all of WALLET_APPLE_PASS_CERT, WALLET_APPLE_PASS_KEY and WALLET_APPLE_WWDR_CERT, "
            "or none of them (development mode then uses a local test chain)"
        )
    pass_type_id = env.get("WALLET_APPLE_PASS_TYPE_ID", "").strip()
    team_id = env.get("WALLET_APPLE_TEAM_ID", "").strip()
    if given and not (pass_type_id and team_id):
        raise ConfigError(
            "WALLET_APPLE_PASS_TYPE_ID and WALLET_APPLE_TEAM_ID must be set with the Apple "
            "certificates (both are in the Pass Type ID certificate's subject)"
        )
    if pass_type_id and not _PASS_TYPE_ID_RE.fullmatch(pass_type_id):
        raise ConfigError(
            "WALLET_APPLE_PASS_TYPE_ID must be a Pass Type ID like pass.de.stadt.wallet "
            f"(got {pass_type_id!r})"
        )
    if team_id and not _TEAM_ID_RE.fullmatch(team_id):
        raise ConfigError(
            "WALLET_APPLE_TEAM_ID must be the 10 capital letters and digits of the Apple "
            f"team id, like A1B2C3D4E5 (got {team_id!r})"
        )
    passphrase = env.get("WALLET_APPLE_PASS_KEY_PASSPHRASE")
    apns_key = _path(env, "WALLET_APNS_KEY")
    key_id = env.get("WALLET_APNS_KEY_ID", "").strip()
    if apns_key is not None and not key_id:
        raise ConfigError("WALLET_APNS_KEY_ID must be set with WALLET_APNS_KEY (the .p8 key's id)")
    return {
        **files,
        "apple_pass_type_id": pass_type_id or Settings.apple_pass_type_id,
        "apple_team_id": team_id or Settings.apple_team_id,
        "apple_pass_key_passphrase": passphrase.encode() if passphrase else None,
        "apns_url": _https(env, "WALLET_APNS_URL", "https://api.push.apple.com"),
        "apns_key": apns_key,
        "apns_key_id": key_id,
        "apns_ca_file": _path(env, "WALLET_APNS_CA_FILE"),
    }


def _google(env: Mapping[str, str]) -> dict[str, Any]:
    account = _path(env, "WALLET_GOOGLE_SERVICE_ACCOUNT")
    issuer_id = env.get("WALLET_GOOGLE_ISSUER_ID", "").strip()
    if (account is None) != (not issuer_id):
        raise ConfigError(
            "set both WALLET_GOOGLE_SERVICE_ACCOUNT (the key file) and WALLET_GOOGLE_ISSUER_ID "
            "(from the Google Pay & Wallet console), or neither"
        )
    if issuer_id and not issuer_id.isdigit():
        raise ConfigError(f"WALLET_GOOGLE_ISSUER_ID must be digits (got {issuer_id!r})")
    token_url = env.get("WALLET_GOOGLE_TOKEN_URL", "").strip()
    return {
        "google_service_account": account,
        "google_issuer_id": issuer_id,
        "google_api_url": _https(
            env, "WALLET_GOOGLE_API_URL", "https://walletobjects.googleapis.com/walletobjects/v1"
        ),
        "google_token_url": _https(env, "WALLET_GOOGLE_TOKEN_URL", token_url) if token_url else "",
        "google_ca_file": _path(env, "WALLET_GOOGLE_CA_FILE"),
    }


_SMTP_SECURITY = ("starttls", "tls", "none")
_ADDRESS_RE = re.compile(r"[^\s<>@]+@[^\s<>@]+\.[^\s<>@]+")


def _smtp(env: Mapping[str, str]) -> dict[str, Any]:
    host = env.get("WALLET_SMTP_HOST", "").strip()
    if not host:
        return {}
    security = env.get("WALLET_SMTP_SECURITY", "starttls").strip().lower()
    if security not in _SMTP_SECURITY:
        raise ConfigError(f"WALLET_SMTP_SECURITY must be starttls, tls or none (got {security!r})")
    if security == "none" and host not in ("127.0.0.1", "::1", "localhost"):
        raise ConfigError(
            "WALLET_SMTP_SECURITY=none sends claim links in clear: only for a mail relay "
            "on this machine (127.0.0.1); use starttls or tls for another host"
        )
    port_raw = env.get("WALLET_SMTP_PORT", "").strip() or ("465" if security == "tls" else "587")
    if not port_raw.isdigit() or not 0 < int(port_raw) < 65536:
        raise ConfigError(f"WALLET_SMTP_PORT must be a port number (got {port_raw!r})")
    sender = env.get("WALLET_SMTP_FROM", "").strip()
    if not _ADDRESS_RE.search(sender):
        raise ConfigError(
            "WALLET_SMTP_FROM must name the sender, e.g. "
            "'Stadt Musterstadt <ausweise@musterstadt.de>'"
        )
    username = env.get("WALLET_SMTP_USERNAME", "").strip()
    password_file = _path(env, "WALLET_SMTP_PASSWORD_FILE")
    if bool(username) != (password_file is not None):
        raise ConfigError(
            "set both WALLET_SMTP_USERNAME and WALLET_SMTP_PASSWORD_FILE (a file holding the "
            "password), or neither"
        )
    return {
        "smtp_host": host,
        "smtp_port": int(port_raw),
        "smtp_security": security,
        "smtp_username": username,
        "smtp_password_file": password_file,
        "smtp_from": sender,
        "smtp_per_minute": _count(env, "WALLET_SMTP_PER_MINUTE", default=60, most=100_000) or 60,
        "smtp_ca_file": _path(env, "WALLET_SMTP_CA_FILE"),
    }


# The roles of wallet.domain.Role (config sits below the domain; a test keeps them equal).
OIDC_ROLE_NAMES = ("admin", "issuer", "verifier")
_TOTP_POLICIES = ("enrolled", "admins", "all")
_CLAIM_RE = re.compile(r"[A-Za-z0-9_:/.-]{1,200}")


def _oidc_roles(raw: str) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    # Pairs are separated by commas, or by semicolons when group names hold commas (AD DNs).
    for item in raw.split(";" if ";" in raw else ","):
        if not item.strip():
            continue
        group, sep, role = item.rpartition("=")
        group, role = group.strip(), role.strip()
        if not sep or not group:
            raise ConfigError(
                "WALLET_OIDC_ROLES must be GROUP=ROLE pairs separated by commas (or by "
                "semicolons when group names hold commas), like "
                f"'wallet-admins=admin,wallet-desk=issuer' (got {item.strip()!r})"
            )
        if role not in OIDC_ROLE_NAMES:
            raise ConfigError(
                f"WALLET_OIDC_ROLES: {group!r} maps to {role!r}; a role is one of "
                f"{', '.join(OIDC_ROLE_NAMES)}"
            )
        if any(known == group for known, _ in pairs):
            raise ConfigError(f"WALLET_OIDC_ROLES names the group {group!r} twice")
        pairs.append((group, role))
    if not pairs:
        raise ConfigError(
            "WALLET_OIDC_ROLES must map at least one group of the provider to a role, like "
            "'wallet-admins=admin,wallet-desk=issuer,wallet-enforcement=verifier'"
        )
    return tuple(pairs)


def _oidc(env: Mapping[str, str]) -> dict[str, Any]:
    policy = env.get("WALLET_TOTP_REQUIRED", "").strip().lower()
    if policy and policy not in _TOTP_POLICIES:
        raise ConfigError(f"WALLET_TOTP_REQUIRED must be enrolled, admins or all (got {policy!r})")
    issuer_raw = env.get("WALLET_OIDC_ISSUER", "").strip()
    if not issuer_raw:
        stray = [name for name in env if name.startswith("WALLET_OIDC_")]
        if stray:
            raise ConfigError(
                f"{sorted(stray)[0]} is set but WALLET_OIDC_ISSUER is not: set the provider's "
                "issuer URL (e.g. https://login.stadt.de/realms/stadt) or unset the others"
            )
        return {"totp_required": policy}
    issuer = _https(env, "WALLET_OIDC_ISSUER", "")
    client_id = env.get("WALLET_OIDC_CLIENT_ID", "").strip()
    if not client_id or len(client_id) > 255:
        raise ConfigError(
            "WALLET_OIDC_CLIENT_ID must be set to the client id the provider gave this service"
        )
    secret = env.get("WALLET_OIDC_CLIENT_SECRET", "").strip()
    secret_file = _path(env, "WALLET_OIDC_CLIENT_SECRET_FILE")
    if bool(secret) == (secret_file is not None):
        raise ConfigError(
            "set WALLET_OIDC_CLIENT_SECRET_FILE (a file holding the client secret; preferred) "
            "or WALLET_OIDC_CLIENT_SECRET, exactly one of them"
        )
    scopes = env.get("WALLET_OIDC_SCOPES", "openid").split()
    if "openid" not in scopes:
        raise ConfigError(f"WALLET_OIDC_SCOPES must include openid (got {' '.join(scopes)!r})")
    claim = env.get("WALLET_OIDC_ROLES_CLAIM", "groups").strip() or "groups"
    if not _CLAIM_RE.fullmatch(claim):
        raise ConfigError(
            f"WALLET_OIDC_ROLES_CLAIM must be a claim name like groups or realm_access.roles "
            f"(got {claim!r})"
        )
    return {
        "oidc_issuer": issuer,
        "oidc_client_id": client_id,
        "oidc_client_secret": secret,
        "oidc_client_secret_file": secret_file,
        "oidc_scopes": " ".join(dict.fromkeys(scopes)),
        "oidc_roles_claim": claim,
        "oidc_roles": _oidc_roles(env.get("WALLET_OIDC_ROLES", "")),
        "totp_required": policy,
    }
