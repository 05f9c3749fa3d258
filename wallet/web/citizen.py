"""The citizen's pass page behind the claim link: the card, its QR code, a PNG download.

The URL carries the claim secret, so these pages are never cached and never
leak it as a referrer. A revoked pass shows no QR code at all: the code would
only be refused at every check, and a card that looks usable invites trouble at
the desk. A suspended or expired pass keeps its code, greyed and labelled, since
it may become valid again (or be reissued) and staff can still look it up.

A suspended pass offers no downloads at all (wallets, QR code, card): a new copy
would only be refused at checks, and the suspension may end in revocation. The
page says so; a copy already in a wallet app is updated by the wallet push.
Once reinstated, the same link offers everything again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from flask import Blueprint, Flask, Response, redirect, render_template, request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from wallet.domain import PassRecord, PassState, WalletPass
from wallet.errors import ClaimLinkReplacedError, ConfigError, DeliveryError, NotFoundError
from wallet.formats.qr import qr_info, render_png, render_svg
from wallet.passtypes import PassType
from wallet.services import credentials, passes, renewals, wallets
from wallet.web import i18n, requestid, security
from wallet.web.i18n import _
from wallet.web.webcontext import context, now

log = logging.getLogger(__name__)
blueprint = Blueprint("citizen", __name__)
PNG_BOX_SIZE = 10  # pixels per module: about 700 px wide, crisp on paper and screens
SVG_MODULE_PX = 4  # whole CSS pixels per module keep every module the same width on screen
QUIET_ZONE = 4  # modules on each side, as wallet.formats.qr draws them


def init_app(app: Flask) -> None:
    i18n.init_app(app)
    security.init_app(app)


blueprint.before_request(security.protect_form)


@blueprint.context_processor
def _language() -> dict[str, object]:
    return {**i18n.template_context(), "switch_url": i18n.switch_url(request.path)}


@blueprint.after_request
def _private(response: Response) -> Response:
    """The URL is the secret: no caches, no referrer, no search engines."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return i18n.remember_language(response)


@dataclass(frozen=True)
class CardField:
    label: str
    value: str


@dataclass(frozen=True)
class Card:
    """What the page shows of one pass, in the request's language."""

    serial: str
    type_id: str
    label: str
    issuer_name: str
    fields: tuple[CardField, ...]
    state: str  # valid | suspended | revoked | expired | not_yet_valid
    valid_from: datetime
    valid_until: datetime
    replaced: bool
    qr_text: str


def _card(record: PassRecord, pass_type: PassType | None, lang: str, moment: datetime) -> Card:
    state: str = record.state
    if record.state is PassState.VALID and record.valid_until <= moment:
        state = "expired"
    elif record.state is PassState.VALID and record.valid_from > moment:
        state = "not_yet_valid"
    if pass_type is None:  # the type was retired from the configuration
        fields = tuple(CardField(name, str(value)) for name, value in record.holder.items())
        label, issuer = record.pass_type, ""
    else:
        fields = tuple(
            CardField(f.label.get(lang), str(record.holder.get(f.name, "")))
            for f in pass_type.fields
        )
        label, issuer = pass_type.label.get(lang), pass_type.issuer_name.get(lang)
    return Card(
        serial=record.serial,
        type_id=record.pass_type,
        label=label,
        issuer_name=issuer,
        fields=fields,
        state=state,
        valid_from=record.valid_from,
        valid_until=record.valid_until,
        replaced=record.replaced_by is not None,
        qr_text=record.qr_text,
    )


def _load(secret: str) -> Card:
    ctx = context()
    moment = now()
    with ctx.db.transaction(write=False) as session:
        record = passes.pass_by_claim_secret(session, secret, now=moment)
        return _card(record, ctx.services.pass_types.get(record.pass_type), i18n.language(), moment)


@blueprint.errorhandler(NotFoundError)
def _unknown_link(exc: NotFoundError) -> tuple[str, int]:
    if isinstance(exc, ClaimLinkReplacedError):
        return render_template("citizen/replaced.html"), 410
    return render_template("citizen/not_found.html"), 404


@blueprint.errorhandler(ConfigError)
@blueprint.errorhandler(DeliveryError)
def _unavailable(exc: ConfigError | DeliveryError) -> tuple[str, int]:
    """A wallet platform not set up, or not answering: "try again later", and log why."""
    log.error("a pass download is not available: %s", exc.message)
    return render_template("citizen/error.html", status=503), 503


@blueprint.errorhandler(Exception)
def _unexpected(exc: Exception) -> tuple[str, int]:
    """A citizen gets a page in their language, never the API's JSON error."""
    if isinstance(exc, HTTPException):
        status = exc.code or 500
    else:
        # The route, not the path: the path holds the claim secret (requestid.route).
        log.exception("unexpected error on %s %s", request.method, requestid.route())
        status = 500
    return render_template("citizen/error.html", status=status), status


@blueprint.get("/p/<secret>")
def pass_page(secret: str) -> str:
    card = _load(secret)
    qr_svg = None
    if card.state != PassState.REVOKED:
        title = _(
            "QR code: %(label)s, serial number %(serial)s", label=card.label, serial=card.serial
        )
        qr_svg = _inline_svg(card.qr_text, title=title)
    return render_template(
        "citizen/pass.html",
        card=card,
        qr_svg=qr_svg,
        secret=secret,
        downloads=_offers_downloads(card),
        wallet_options=_wallet_options(platform(request.user_agent.string)),
    )


def _offers_downloads(card: Card) -> bool:
    """Revoked and suspended passes are not handed out (see the module's docstring)."""
    return card.state not in (PassState.REVOKED, PassState.SUSPENDED)


# Browsers that are not Safari although they say "Safari" in their user agent.
_NOT_SAFARI = ("chrome", "chromium", "crios", "fxios", "firefox", "edg/", "edgios", "opr/")


def platform(user_agent: str) -> str:
    """ "android", "apple" (iPhone, iPad, Safari on a Mac) or "desktop", from the user agent.

    iPadOS Safari says "Macintosh" by default, so Safari on a Mac counts as Apple:
    it adds passes to Wallet too. Only the order and choice of buttons depend on
    it; every download works from any device.
    """
    agent = user_agent.lower()
    if "android" in agent:
        return "android"
    if any(device in agent for device in ("iphone", "ipad", "ipod")):
        return "apple"
    if "macintosh" in agent and "safari" in agent and not any(b in agent for b in _NOT_SAFARI):
        return "apple"
    return "desktop"


def _wallet_options(device: str) -> list[str]:
    """The ways to keep the pass, as Apple's and Google's button guidelines order them.

    Android shows Google Wallet only (Apple Wallet does not exist there); Apple
    devices show Apple Wallet first, Google Wallet second; a desktop shows both.
    Apple Wallet needs Apple credentials (or development mode), Google Wallet a
    configured issuer; printing is always offered, last.
    """
    settings = context().settings
    options = []
    if credentials.apple_available(settings) and device != "android":
        options.append("apple")
    if settings.google_enabled:
        options.insert(0 if device == "android" else len(options), "google")
    return [*options, "print"]


def _inline_svg(text: str, *, title: str) -> Markup:
    """The QR code as inline SVG at a whole number of pixels per module.

    render_svg escapes the title and uses presentation attributes only (fill,
    stroke, shape-rendering), never a style attribute, so it passes our CSP's
    style-src 'self'. We add width and height attributes, which CSS may shrink.
    """
    size = (qr_info(text).modules + 2 * QUIET_ZONE) * SVG_MODULE_PX
    svg = render_svg(text, title=title).replace("<svg ", f'<svg width="{size}" height="{size}" ', 1)
    return Markup(svg)  # noqa: S704 - our own SVG, its only text escaped by render_svg


@blueprint.get("/p/<secret>/qr.png")
def qr_png(secret: str) -> Response | tuple[str, int]:
    card = _load(secret)
    if not _offers_downloads(card):
        return _refused_download_page(card)
    response = Response(render_png(card.qr_text, box_size=PNG_BOX_SIZE), mimetype="image/png")
    # type ids are [a-z][a-z0-9_-]*, safe in a quoted filename
    response.headers["Content-Disposition"] = f'attachment; filename="{card.type_id}-pass-qr.png"'
    return response


class _RefusedDownload(Exception):
    def __init__(self, card: Card) -> None:
        self.card = card


@blueprint.errorhandler(_RefusedDownload)
def _refused_download(exc: _RefusedDownload) -> tuple[str, int]:
    return _refused_download_page(exc.card)


def _refused_download_page(card: Card) -> tuple[str, int]:
    """410 for a revoked pass (for good), 409 for a suspended one (for now)."""
    if card.state == PassState.REVOKED:
        return render_template("citizen/revoked_download.html", card=card), 410
    return render_template("citizen/suspended_download.html", card=card), 409


def _downloadable(secret: str) -> tuple[Card, WalletPass]:
    """The pass behind a link; a revoked or suspended pass is not handed out."""
    ctx = context()
    moment = now()
    with ctx.db.transaction(write=False) as session:
        record = passes.pass_by_claim_secret(session, secret, now=moment)
        card = _card(record, ctx.services.pass_types.get(record.pass_type), i18n.language(), moment)
        if not _offers_downloads(card):
            raise _RefusedDownload(card)
        value = passes.wallet_pass_by_claim_secret(session, ctx.services, secret, now=moment)
    return card, value


R = TypeVar("R", Response, WerkzeugResponse)


def _taken(value: WalletPass, response: R) -> R:
    """The holder has the pass now: a renewal's old token can retire (see renewals)."""
    if value.wallet_id != value.serial:
        ctx = context()
        with ctx.db.transaction(write=True) as session:
            renewals.successor_claimed(session, ctx.services, value.serial, now=now())
    return response


def _attachment(data: bytes, mimetype: str, filename: str) -> Response:
    response = Response(data, mimetype=mimetype)
    # type ids are [a-z][a-z0-9_-]*, safe in a quoted filename
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@blueprint.get("/p/<secret>/pass.pkpass")
def apple_pass(secret: str) -> Response:
    card, value = _downloadable(secret)
    data = wallets.pkpass_for(context().services, value, now=now())
    response = _attachment(data, "application/vnd.apple.pkpass", f"{card.type_id}.pkpass")
    return _taken(value, response)


@blueprint.get("/p/<secret>/google-wallet")
def google_wallet(secret: str) -> WerkzeugResponse:
    _, value = _downloadable(secret)
    services = context().services
    if not services.settings.google_enabled:
        raise ConfigError("Google Wallet is not set up on this service")
    link = wallets.google_save_link(
        services, value, now=now(), client=lambda: wallets.google_client(services)
    )
    return _taken(value, redirect(link, code=303))


@blueprint.get("/p/<secret>/card.pdf")
def card_pdf(secret: str) -> Response:
    """The card at ID-1 size, or with ?layout=sheet on an A4 page with cut marks."""
    card, value = _downloadable(secret)
    kind = "sheet" if request.args.get("layout") == "sheet" else "pdf"
    data = wallets.card(context().services, value, kind=kind, lang=i18n.language(), now=now())
    name = f"{card.type_id}-{'a4' if kind == 'sheet' else 'card'}.pdf"
    return _taken(value, _attachment(data, "application/pdf", name))


@blueprint.get("/p/<secret>/card.png")
def card_png(secret: str) -> Response:
    card, value = _downloadable(secret)
    data = wallets.card(context().services, value, kind="png", lang=i18n.language(), now=now())
    return _taken(value, _attachment(data, "image/png", f"{card.type_id}-card.png"))
