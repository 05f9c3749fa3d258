"""The e-mail that brings a holder their claim link: bilingual, plain text and HTML.

The holder's language comes first, the other one below it, so a message that
reaches someone else in the household still makes sense. It carries the link
and what to do with it, nothing else about the holder: no name, no card number
(an e-mail passes through servers the city does not run).
"""

from __future__ import annotations

import html
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from wallet.passtypes import Text

__all__ = ["claim_email", "reminder_email"]

_SUBJECT = Text(de="Ihr digitaler Ausweis: %(label)s", en="Your digital pass: %(label)s")
_PARAGRAPHS = {
    "de": (
        "Guten Tag,",
        "Ihr Ausweis „%(label)s“ ist bereit. Öffnen Sie diesen Link auf Ihrem Smartphone, "
        "um ihn in Apple Wallet oder Google Wallet zu speichern oder auszudrucken:",
        "Der Link ist persönlich: Geben Sie ihn nicht weiter. Er gilt bis %(until)s. "
        "Haben Sie diese Nachricht nicht erwartet, können Sie sie löschen.",
    ),
    "en": (
        "Hello,",
        "Your pass “%(label)s” is ready. Open this link on your smartphone to add it to "
        "Apple Wallet or Google Wallet, or to print it:",
        "The link is personal: do not pass it on. It is valid until %(until)s. "
        "If you did not expect this message, you can delete it.",
    ),
}


def _order(lang: str) -> tuple[str, str]:
    return ("en", "de") if lang == "en" else ("de", "en")


def claim_email(
    *,
    sender: str,
    recipient: str,
    lang: str,
    label: Text,
    claim_url: str,
    link_valid_until: datetime,
    now: datetime,
) -> EmailMessage:
    """A multipart (text and HTML) message with the claim link, holder's language first."""
    return _compose(
        sender=sender, recipient=recipient, lang=lang, subject=_SUBJECT, paragraphs=_PARAGRAPHS,
        label=label, until=link_valid_until, middle=Text(claim_url, claim_url), link=True,
        now=now,
    )  # fmt: skip


_REMINDER_SUBJECT = Text(de="Ihr Ausweis läuft bald ab: %(label)s",
                         en="Your pass runs out soon: %(label)s")  # fmt: skip
_REMINDER = {
    "de": (
        "Guten Tag,",
        "Ihr Ausweis „%(label)s“ gilt noch bis %(until)s. So verlängern Sie ihn:",
        "Sie erhalten diese Erinnerung, weil Sie ihr zugestimmt haben.",
    ),
    "en": (
        "Hello,",
        "Your pass “%(label)s” is valid until %(until)s. This is how to renew it:",
        "You get this reminder because you agreed to it.",
    ),
}


def reminder_email(
    *,
    sender: str,
    recipient: str,
    lang: str,
    label: Text,
    valid_until: datetime,
    renewal_url: str,
    renewal_desk: Text | None,
    now: datetime,
) -> EmailMessage:
    """A renewal reminder, holder's language first: where to renew, and nothing else."""
    where = Text(renewal_url, renewal_url) if renewal_url else (renewal_desk or Text("", ""))
    return _compose(
        sender=sender, recipient=recipient, lang=lang, subject=_REMINDER_SUBJECT,
        paragraphs=_REMINDER, label=label, until=valid_until, middle=where,
        link=bool(renewal_url), now=now,
    )  # fmt: skip


def _compose(
    *,
    sender: str,
    recipient: str,
    lang: str,
    subject: Text,
    paragraphs: dict[str, tuple[str, str, str]],
    label: Text,
    until: datetime,
    middle: Text,
    link: bool,
    now: datetime,
) -> EmailMessage:
    """Greeting, text, the link (or place) and a note, in both languages, as text and HTML."""
    first, second = _order(lang)
    dates = {"de": f"{until:%d.%m.%Y}", "en": f"{until:%Y-%m-%d}"}
    message = EmailMessage()
    message["Subject"] = " / ".join(
        subject.get(code) % {"label": label.get(code)} for code in (first, second)
    )
    message["From"], message["To"] = sender, recipient
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    message["Content-Language"] = f"{first}, {second}"
    texts, pages = [], []
    for code in (first, second):
        values = {"label": label.get(code), "until": dates[code]}
        greeting, body, note = (p % values for p in paragraphs[code])
        where = middle.get(code)
        texts.append(f"{greeting}\n\n{body}\n\n{where}\n\n{note}\n")
        shown = html.escape(where)
        anchor = f'<a href="{html.escape(where, quote=True)}">{shown}</a>' if link else shown
        pages.append(f'<section lang="{code}"><p>{html.escape(greeting)}</p>'
                     f"<p>{html.escape(body)}</p><p>{anchor}</p><p>{html.escape(note)}</p>"
                     "</section>")  # fmt: skip
    message.set_content("\n----------------------------------------\n\n".join(texts))
    title = html.escape(subject.get(first) % {"label": label.get(first)})
    message.add_alternative(
        f'<!doctype html><html lang="{first}"><head><meta charset="utf-8"><title>{title}'
        "</title></head><body>" + "<hr>".join(pages) + "</body></html>\n",
        subtype="html",
    )
    return message
