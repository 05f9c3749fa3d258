"""``wallet doctor``'s checks: the wallet configuration, pass files and save links.

Most pain with wallet passes is configuration: the wrong or an expired WWDR
certificate, a certificate for another pass type id, passes that silently do
not open, links that are too long. Each check returns findings that name the
problem and what to do, so an operator fixes it before a citizen meets it.

With staff sign-in through the city's identity provider configured, the
provider's discovery document is fetched the way the console's client fetches
it (``requests``, so ``REQUESTS_CA_BUNDLE`` applies the same) and judged by what
a sign-in needs from it: before the first member of staff meets a refusal page.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from functools import partial
from urllib.parse import urlsplit

import jwt
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from wallet.config import Settings
from wallet.domain import Role
from wallet.errors import ConfigError, PassTypeError, WalletError
from wallet.formats import google
from wallet.formats.doctor import Finding, check_apple_design, check_apple_signer, check_pkpass
from wallet.push.apns import load_token_auth
from wallet.services import brand, credentials, oidc, wallets
from wallet.services.context import Services
from wallet.store.models import OutboxRow

__all__ = [
    "check_configuration",
    "check_oidc",
    "check_outbox",
    "check_pkpass_file",
    "check_save_link",
]

STUCK_AFTER_SECONDS = 600
PROVIDER_TIMEOUT = 10  # seconds for each request to the identity provider, as the console's
_PROVIDER_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")
_LOCAL_HTTP = ("http://127.0.0.1:", "http://localhost:", "http://[::1]:")


def _guard(check: Callable[[], list[Finding]], code: str) -> list[Finding]:
    """Run a check; a configuration that cannot even be loaded is itself a finding."""
    try:
        return check()
    except (ConfigError, PassTypeError) as exc:
        return [Finding(code, exc.message)]


def check_configuration(services: Services, *, now: datetime) -> list[Finding]:
    settings = services.settings
    findings: list[Finding] = []

    def apple() -> list[Finding]:
        signer, development = credentials.load_apple_signer(settings)
        found = check_apple_signer(
            signer,
            pass_type_id=settings.apple_pass_type_id,
            team_id=settings.apple_team_id,
            now=now,
        )
        if development:
            found.append(
                Finding(
                    "apple-development-certificates",
                    "Apple Wallet uses the local development chain: its passes do not install "
                    "on a real iPhone. Set WALLET_APPLE_PASS_CERT, WALLET_APPLE_PASS_KEY and "
                    "WALLET_APPLE_WWDR_CERT for production",
                    "warning",
                )
            )
        return found

    findings += _guard(apple, "apple-certificate-unusable")
    for type_id in sorted(services.pass_types):
        folder = settings.pass_types_dir / type_id / "apple"
        findings += _guard(partial(check_apple_design, folder), "apple-design-unusable")
    web_service = wallets.apple_web_service_url(settings)
    if not web_service.startswith("https://"):
        local = urlsplit(web_service).hostname in ("127.0.0.1", "localhost", "::1")
        findings.append(
            Finding(
                "web-service-url-not-https",
                f"the passes' webServiceURL {web_service} is not https: Wallet on a device "
                "never calls it, so revoked passes are not updated. Set WALLET_PUBLIC_URL "
                "to the https address of the service",
                "warning" if local else "error",  # this machine only: development
            )
        )
    if settings.apns_key is not None:
        key_path = settings.apns_key

        def apns() -> list[Finding]:
            load_token_auth(key_path, key_id=settings.apns_key_id, team_id=settings.apple_team_id)
            return []

        findings += _guard(apns, "apns-key-unusable")
    if settings.google_enabled:

        def google_setup() -> list[Finding]:
            services.formats.google_account  # noqa: B018 - loads and checks the key file
            services.formats.google_designs  # noqa: B018
            return []

        findings += _guard(google_setup, "google-setup-unusable")
    return findings + _button_findings(settings)


def _button_findings(settings: Settings) -> list[Finding]:
    """Stand-in wallet buttons are fine to try the service, not for citizens."""
    missing = brand.stand_ins_in_use(settings)
    if not missing:
        return []
    folder = settings.instance_dir / brand.INSTANCE_FOLDER
    wanted = "; ".join(f"{name}: {brand.BUTTON_FILES[name]}" for name in missing)
    return [
        Finding(
            "wallet-buttons-stand-in",
            f"the citizen page shows stand-in wallet buttons. Download the official artwork "
            f"(Apple's Add to Apple Wallet guidelines, Google Wallet's brand guidelines) and "
            f"put it into {folder} as: {wanted}",
            "warning",
        )
    ]


def check_pkpass_file(data: bytes, services: Services, *, now: datetime) -> list[Finding]:
    """A .pkpass's structure and signature, against the configured WWDR if there is one."""
    wwdr = None
    # Without a loadable chain the embedded certificates are still examined.
    with contextlib.suppress(WalletError):
        wwdr = credentials.load_apple_signer(services.settings)[0].wwdr
    return check_pkpass(data, wwdr=wwdr, now=now)


def check_save_link(url: str, services: Services) -> list[Finding]:
    """An "Add to Google Wallet" link: its length and, if configured, its signature."""
    findings = []
    if not url.startswith(google.SAVE_URL_PREFIX):
        return [Finding("save-link-unreadable", f"not a Google save link: {url[:60]}")]
    if len(url) > google.MAX_SAVE_LINK_LENGTH:
        findings.append(
            Finding(
                "save-link-too-long",
                f"the save link has {len(url)} characters; Google and some browsers refuse "
                f"links longer than {google.MAX_SAVE_LINK_LENGTH}. Insert the object over the "
                "REST API first and put only its id into the link",
            )
        )
    token = url[len(google.SAVE_URL_PREFIX) :]
    problem = _save_token_problem(token)
    if problem is not None:
        return [*findings, Finding("save-link-unreadable", problem)]
    if not services.settings.google_enabled:
        findings.append(
            Finding(
                "save-link-signature-unchecked",
                "the link is well formed, but its signature was not checked: Google Wallet "
                "is not configured here (WALLET_GOOGLE_SERVICE_ACCOUNT)",
                "warning",
            )
        )
    if services.settings.google_enabled:
        try:
            account = services.formats.google_account
            public = account.private_key.public_key()
            jwt.decode(token, public, algorithms=["RS256"], audience="google")
        except ConfigError as exc:
            findings.append(Finding("google-setup-unusable", exc.message))
        except jwt.PyJWTError as exc:
            findings.append(
                Finding(
                    "save-link-signature-invalid",
                    f"the save link's JWT does not verify with the configured service account "
                    f"({exc}); it was signed with another key or altered",
                )
            )
    return findings


def _save_token_problem(token: str) -> str | None:
    """What makes a save link's JWT unusable for Google, read without its key; None if nothing.

    Google answers a malformed link with a bare error page in the citizen's
    browser, so the shape is checked even where no service account is set up.
    """
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        return f"the save link does not carry a readable JWT ({exc})"
    if header.get("alg") != "RS256":
        return f"the save link's JWT must be signed with RS256, not {header.get('alg')!r}"
    if claims.get("aud") != "google" or claims.get("typ") != "savetowallet":
        return 'the save link\'s JWT needs aud "google" and typ "savetowallet"'
    if not isinstance(claims.get("iss"), str) or "@" not in claims["iss"]:
        return "the save link's JWT must name the service account's e-mail as iss"
    payload = claims.get("payload")
    objects = payload.get("genericObjects") if isinstance(payload, dict) else None
    if not isinstance(objects, list) or not objects:
        return "the save link's JWT carries no genericObjects in its payload"
    if not all(isinstance(o, dict) and isinstance(o.get("id"), str) for o in objects):
        return "every object in the save link needs an id"
    return None


def check_outbox(session: Session, *, now: datetime) -> list[Finding]:
    """Deliveries given up, or waiting far too long (is `wallet worker` running?)."""
    findings = []
    failed = session.scalar(
        select(func.count()).select_from(OutboxRow).where(OutboxRow.state == "failed")
    )
    if failed:
        findings.append(
            Finding(
                "outbox-failed",
                f"{failed} wallet deliveries failed for good; `wallet audit show` and the "
                "worker's log name why",
                "warning",
            )
        )
    oldest = session.scalar(
        select(func.min(OutboxRow.created_at)).where(OutboxRow.state == "pending")
    )
    if oldest is not None and (now - oldest).total_seconds() > STUCK_AFTER_SECONDS:
        findings.append(
            Finding(
                "outbox-stuck",
                f"wallet deliveries have been waiting since {oldest:%Y-%m-%d %H:%M} UTC; "
                "check that `wallet worker` runs and can reach APNs and Google",
            )
        )
    return findings


# -- the city's identity provider ---------------------------------------------------


def check_oidc(settings: Settings) -> list[Finding]:
    """Staff sign-in through the provider: the client's settings and the provider's
    discovery document (and keys), as a sign-in will need them. Nothing when OIDC is off."""
    if not settings.oidc_enabled:
        return []
    return _oidc_client_findings(settings) + _discovery_findings(settings)


def _oidc_client_findings(settings: Settings) -> list[Finding]:
    findings = []
    if not settings.oidc_client_id:
        findings.append(
            Finding(
                "oidc-client-id-missing",
                "WALLET_OIDC_CLIENT_ID is empty: set it to the client id the provider gave "
                "this service",
            )
        )
    try:
        settings.oidc_secret()
    except ConfigError as exc:
        findings.append(
            Finding(
                "oidc-client-secret-unusable",
                f"{exc.message}: the console cannot sign anyone in through the provider, and "
                "the web server does not start. Put the client secret from the provider into "
                "that file, readable by the service only",
            )
        )
    roles = {role.value for role in Role}
    wrong = [f"{group}={role}" for group, role in settings.oidc_roles if role not in roles]
    groups = [group for group, _role in settings.oidc_roles]
    if not settings.oidc_roles or wrong or len(set(groups)) != len(groups):
        findings.append(
            Finding(
                "oidc-roles-invalid",
                "WALLET_OIDC_ROLES must map each of the provider's groups once to admin, "
                "issuer or verifier, like 'wallet-admins=admin,wallet-desk=issuer,"
                "wallet-enforcement=verifier'"
                + (f" (not a role: {', '.join(wrong)})" if wrong else ""),
            )
        )
    return findings


def _usable_url(url: object, *, issuer: str) -> bool:
    """https, or plain http on this machine when the issuer is too (a local provider)."""
    if not isinstance(url, str):
        return False
    return url.startswith("https://") or (
        issuer.startswith(_LOCAL_HTTP) and url.startswith(_LOCAL_HTTP)
    )


def _fetch_json(url: str) -> tuple[object, str | None]:
    """The JSON document at ``url``, or None and what went wrong, in words."""
    try:
        answer = requests.get(url, timeout=PROVIDER_TIMEOUT)
    except requests.RequestException as exc:
        return None, f"it cannot be reached ({exc.__class__.__name__})"
    if answer.status_code != 200:
        return None, f"it answers HTTP {answer.status_code}"
    try:
        return answer.json(), None
    except ValueError:
        return None, "its answer is not JSON"


def _discovery_findings(settings: Settings) -> list[Finding]:
    issuer = settings.oidc_issuer
    url = f"{issuer}/.well-known/openid-configuration"
    document, problem = _fetch_json(url)
    if problem is not None or not isinstance(document, dict):
        return [
            Finding(
                "oidc-discovery-unusable",
                f"the provider's discovery document {url}: {problem or 'not a JSON object'}. "
                "Check WALLET_OIDC_ISSUER (the issuer URL exactly, e.g. "
                "https://login.stadt.de/realms/stadt for Keycloak) and that this server reaches "
                "the provider (firewall, proxy; REQUESTS_CA_BUNDLE for the city's own CA)",
            )
        ]
    findings = []
    if document.get("issuer") != issuer:
        findings.append(
            Finding(
                "oidc-issuer-mismatch",
                f"the discovery document names the issuer {str(document.get('issuer'))[:200]!r}, "
                f"but WALLET_OIDC_ISSUER is {issuer!r}: every sign-in is refused. Set "
                "WALLET_OIDC_ISSUER to exactly the issuer the provider names",
            )
        )
    for name in _PROVIDER_ENDPOINTS:
        if not _usable_url(document.get(name), issuer=issuer):
            findings.append(
                Finding(
                    "oidc-endpoint-missing",
                    f"the discovery document has no usable {name} (an https URL): the provider "
                    "is not set up for this service's sign-in (behind a proxy: does it know its "
                    "public https address?)",
                )
            )
    methods = document.get("code_challenge_methods_supported")
    if methods is not None and not (isinstance(methods, list) and "S256" in methods):
        findings.append(
            Finding(
                "oidc-pkce-s256-missing",
                "the provider does not offer PKCE with S256 (code_challenge_methods_supported), "
                "which every sign-in uses: enable it for this client (Keycloak: Advanced, "
                "Proof Key for Code Exchange Code Challenge Method S256)",
            )
        )
    algorithms = document.get("id_token_signing_alg_values_supported")
    listed = algorithms if isinstance(algorithms, list) else ["RS256"]
    if not oidc.SAFE_ALGORITHMS & {a for a in listed if isinstance(a, str)}:
        findings.append(
            Finding(
                "oidc-id-token-algorithm",
                f"the provider signs ID tokens only with {', '.join(map(str, listed))[:200]}; "
                "this service accepts only asymmetric signatures (RS256, PS256, ES256, EdDSA): "
                "choose one for this client's ID tokens",
            )
        )
    if _usable_url(document.get("jwks_uri"), issuer=issuer):
        findings += _jwks_findings(str(document["jwks_uri"]))
    return findings


def _jwks_findings(url: str) -> list[Finding]:
    jwks, problem = _fetch_json(url)
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if problem is None and isinstance(keys, list) and keys:
        return []
    return [
        Finding(
            "oidc-keys-unusable",
            f"the provider's signing keys {url}: {problem or 'no keys in it'}. No ID token can "
            "be checked without them: check that this server reaches that address",
        )
    ]
