"""Console sign-in through the city's OpenID Connect provider (Keycloak, AD FS, ...).

Authlib's Flask client runs the Authorization Code flow with PKCE (S256), state
and nonce, configured from the provider's discovery document. Its state data
(nonce, PKCE verifier) is kept in the database, not in the cookie: the callback
takes it out as it reads it, so a state works once, on any app server. The ID
token is checked by :func:`wallet.services.oidc.verify_id_token` with the
service's clock. Refusals are logged with a reason slug and at most a hash of
the subject, never a name or an e-mail address.

The console's header greets such a user by the ID token's ``name`` (or
``preferred_username``), kept in the signed session cookie for that session
only: the database and the logs know the account only by its hash.

Logout ends the console session and, when the provider's discovery names an
``end_session_endpoint``, sends the browser there (RP-initiated logout with
``id_token_hint`` and ``post_logout_redirect_uri``). The console's
Content-Security-Policy lets forms lead to the provider for that redirect.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
from authlib.integrations.flask_client import (  # type: ignore[import-untyped]
    FlaskOAuth2App,
    OAuth,
)
from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from wallet.errors import WalletError
from wallet.services import metrics, oidc
from wallet.web.console import HOOKS, Staff, _safe_next, blueprint, sign_in
from wallet.web.i18n import _
from wallet.web.webcontext import context, now

log = logging.getLogger(__name__)

CLIENT = "city"
# Session key: the ID token, sent back as the logout hint ("" when too large to keep).
ID_TOKEN = "oidc_id_token"  # noqa: S105 - a key, not a secret
# Session key: the person's name from the ID token, for the header (never stored elsewhere).
DISPLAY_NAME = "oidc_name"
_NEXT = "oidc_next"
_EXTENSION = "wallet.oidc"
_TIMEOUT = 10  # seconds for each call to the provider
# An ID token larger than this (a member of hundreds of groups) would push the session
# cookie past the 4 KB browsers keep: logout then names the client instead of the hint.
MAX_HINT = 2048


class _StateStore:
    """Authlib's cache interface over the oidc_logins table (read once, then gone)."""

    def get(self, key: str) -> str | None:
        ctx = context()
        with ctx.db.transaction(write=True) as db_session:
            return oidc.take_login(db_session, key=key, audit_key=ctx.services.audit_key, now=now())

    def set(self, key: str, value: str, expires_in: int | None = None) -> None:
        ctx = context()
        with ctx.db.transaction(write=True) as db_session:
            oidc.remember_login(
                db_session, key=key, data=value, audit_key=ctx.services.audit_key, now=now()
            )

    def delete(self, key: str) -> None:
        """Nothing left to do: :meth:`get` removed it."""


class _CityClient(FlaskOAuth2App):  # type: ignore[misc]
    """Authlib's client, with the ID token checked by the service (its clock, its rules)."""

    def parse_id_token(
        self,
        token: dict[str, Any],
        nonce: str,
        claims_options: Any = None,
        claims_cls: Any = None,
        leeway: int = 0,
    ) -> dict[str, Any]:
        settings = context().settings
        metadata = self.load_server_metadata()

        def check(jwks: dict[str, Any]) -> dict[str, Any]:
            return oidc.verify_id_token(
                token.get("id_token"),
                jwks=jwks,
                issuer=settings.oidc_issuer,
                client_id=settings.oidc_client_id,
                nonce=nonce,
                algorithms=metadata.get("id_token_signing_alg_values_supported"),
                now=now(),
            )

        try:
            return check(self.fetch_jwk_set())
        except oidc.SignInRefused as exc:
            if exc.reason != "unknown_key":
                raise
            return check(self.fetch_jwk_set(force=True))  # the provider rotated its keys


def init_app(app: Flask) -> None:
    settings = app.extensions["wallet"].settings
    if not settings.oidc_enabled:
        return
    oauth = OAuth(app, cache=_StateStore())
    oauth.register(
        CLIENT,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_secret(),
        server_metadata_url=f"{settings.oidc_issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": settings.oidc_scopes,
            "code_challenge_method": "S256",
            "default_timeout": _TIMEOUT,
        },
        client_cls=_CityClient,
    )
    app.extensions[_EXTENSION] = oauth
    # Authlib logs the PKCE verifier at DEBUG: its lines never reach a log, whatever the level.
    logging.getLogger("authlib").setLevel(logging.INFO)
    app.after_request(_let_forms_reach_the_provider)


def _client() -> _CityClient | None:
    oauth: OAuth | None = current_app.extensions.get(_EXTENSION)
    if oauth is None:
        return None
    client: _CityClient = oauth.create_client(CLIENT)
    return client


def _metadata(client: _CityClient) -> dict[str, Any]:
    """The provider's discovery document; its issuer must be the configured one."""
    metadata: dict[str, Any] = client.load_server_metadata()
    if metadata.get("issuer") != context().settings.oidc_issuer:
        raise oidc.SignInRefused(
            "the provider's discovery document names another issuer", reason="discovery_issuer"
        )
    return metadata


def _origin(url: object) -> str | None:
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else None


def _let_forms_reach_the_provider(response: Response) -> Response:
    """Logout is a form whose answer redirects to the provider: CSP form-action must allow it."""
    csp = response.headers.get("Content-Security-Policy", "")
    if not request.path.startswith("/console") or "form-action 'self'" not in csp:
        return response
    origins = {_origin(context().settings.oidc_issuer)}
    client = _client()
    if client is not None:
        origins.add(_origin(client.server_metadata.get("end_session_endpoint")))
    allowed = " ".join(sorted(o for o in origins if o))
    response.headers["Content-Security-Policy"] = csp.replace(
        "form-action 'self'", f"form-action 'self' {allowed}"
    )
    return response


def _refused(
    reason: str, *, status: int, tag: str = "", switch_url: str | None = None
) -> ResponseReturnValue:
    """The page for a sign-in the provider's answer does not allow; logged without names."""
    metrics.login_failed("oidc")
    log.warning(
        "refused console sign-in through the identity provider: %s%s",
        reason, f" (account {tag})" if tag else "",
    )  # fmt: skip
    no_role = reason == "no_role"
    if no_role:
        title = _("Your account has no access to this service")
        message = _(
            "You signed in with the city's account, but it belongs to none of the groups "
            "that give access to this staff console."
        )
        advice = _(
            "Please ask your IT department to add your account to the group for this "
            "service (issuing, checking or administering passes), then sign in again."
        )
    elif reason == "disabled":
        title = _("Your account is disabled in this service")
        message = _("An administrator of this service has disabled your account.")
        advice = _("Please ask an administrator of this service to enable it again.")
    elif reason == "unreachable":
        title = _("The city's sign-in service cannot be reached")
        message = _(
            "The sign-in could not be completed because the identity provider did not answer."
        )
        advice = _(
            "Please try again in a few minutes. If it keeps happening, tell your IT department."
        )
    else:
        title = _("The sign-in could not be completed")
        message = _(
            "The answer of the city's sign-in service could not be accepted (it may have "
            "expired or been used already)."
        )
        advice = _(
            "Please start the sign-in again. If it keeps happening, tell your IT department."
        )
    page = render_template(
        "console/oidc_refused.html",
        title=title,
        message=message,
        advice=advice,
        reference=tag,
        retry=not no_role,
        switch_url=switch_url,
    )
    return page, status


@blueprint.get("/oidc/login")
def oidc_login() -> ResponseReturnValue:
    """Off to the city's identity provider (a link, so no form-action is involved)."""
    client = _client()
    if client is None:
        abort(404)
    target = _safe_next(request.args.get("next"))
    try:
        _metadata(client)
        session[_NEXT] = target or ""
        response: ResponseReturnValue = client.authorize_redirect(_redirect_uri())
    except (requests.RequestException, ValueError):
        return _refused("unreachable", status=502)
    except oidc.SignInRefused as exc:
        return _refused(exc.reason, status=502)
    return response


def _redirect_uri() -> str:
    """Built from the public URL, never from the request's Host header."""
    return context().settings.public_url + url_for("console.oidc_callback")


@blueprint.get("/oidc/callback")
def oidc_callback() -> ResponseReturnValue:
    """Back from the provider: check everything, then map the groups to a role."""
    client = _client()
    if client is None:
        abort(404)
    ctx = context()
    # RFC 9207: an answer naming another issuer (or none, where this one names itself) is
    # another provider's, replayed here (a mix-up attack).
    answered_by = request.args.get("iss")
    names_itself = client.server_metadata.get("authorization_response_iss_parameter_supported")
    if answered_by != ctx.settings.oidc_issuer and (answered_by is not None or names_itself):
        return _refused("mix_up", status=400)
    try:
        _metadata(client)
        token = client.authorize_access_token()
    except OAuthError as exc:
        return _refused(str(exc.error or "oauth_error")[:40], status=400)
    except oidc.SignInRefused as exc:
        return _refused(exc.reason, status=400)
    except (requests.RequestException, ValueError):
        return _refused("unreachable", status=502)
    claims = token.get("userinfo")
    if not isinstance(claims, dict):
        return _refused("no_id_token", status=400)
    issuer = ctx.settings.oidc_issuer
    identity = oidc.Identity(
        issuer=issuer,
        subject=claims["sub"],
        groups=oidc.groups_of(claims, ctx.settings.oidc_roles_claim),
    )
    tag = oidc.subject_tag(issuer, identity.subject)
    refusal: WalletError | None = None
    with ctx.db.transaction(write=True) as db_session:
        try:
            user = oidc.sign_in(
                db_session,
                identity,
                mapping=ctx.settings.oidc_roles,
                audit_key=ctx.services.audit_key,
                now=now(),
            )
        except oidc.SignInRefused as exc:
            refusal = exc  # the audit entry and ended sessions are committed
    if isinstance(refusal, oidc.SignInRefused):
        # Signing out at the provider lets someone else sign in at this browser.
        switch = logout_url(token.get("id_token"))
        return _refused(refusal.reason, status=403, tag=tag, switch_url=switch)
    target = _safe_next(session.get(_NEXT))
    id_token = str(token.get("id_token", ""))
    hint = id_token if len(id_token) <= MAX_HINT else ""
    keep = {ID_TOKEN: hint}
    name = oidc.display_name(claims)
    if name is not None:
        keep[DISPLAY_NAME] = name
    return sign_in(Staff(user.username, user.role), target, record=False, keep=keep)


@blueprint.context_processor
def _who() -> dict[str, Any]:
    """For the header: the provider's name for the signed-in person, and whether they
    came through the provider (whose own second factor then applies)."""
    staff = g.get("staff")
    name = session.get(DISPLAY_NAME)
    return {
        "display_name": name if staff is not None and isinstance(name, str) else None,
        "via_provider": staff is not None and ID_TOKEN in session,
    }


def logout_url(id_token: object) -> str | None:
    """Where to send the browser after a local logout: the provider's end_session, if any."""
    client = _client()
    if client is None or not isinstance(id_token, str):  # not signed in through the provider
        return None
    endpoint = client.server_metadata.get("end_session_endpoint")
    if not isinstance(endpoint, str):
        return None
    post_logout = context().settings.public_url + url_for("console.login")
    result: dict[str, Any] = client.create_logout_url(
        post_logout_redirect_uri=post_logout,
        id_token_hint=id_token or None,  # client_id alone where the token was too large
        client_id=context().settings.oidc_client_id,
    )
    url = result["url"]
    return url if isinstance(url, str) else None


def _provider_logout() -> str | None:
    """console.logout's hook: the provider's end_session for this session, if any."""
    return logout_url(session.get(ID_TOKEN))


HOOKS.provider_logout = _provider_logout
