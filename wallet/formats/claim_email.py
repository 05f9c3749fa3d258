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
    first, second = _order(lang)
    values = {
        code: {"label": label.get(code), "until": f"{link_valid_until:%d.%m.%Y}"}
        if code == "de"
        else {"label": label.get(code), "until": f"{link_valid_until:%Y-%m-%d}"}
        for code in (first, second)
    }
    message = EmailMessage()
    message["Subject"] = " / ".join(
        _SUBJECT.get(code) % {"label": label.get(code)} for code in (first, second)
    )
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(now)
    domain = parseaddr(sender)[1].rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(domain=domain)
    message["Content-Language"] = f"{first}, {second}"
    message.set_content(_text(values, first, second, claim_url))
    message.add_alternative(_html(values, first, second, claim_url), subtype="html")
    return message


def _text(values: dict[str, dict[str, str]], first: str, second: str, url: str) -> str:
    parts = []
    for code in (first, second):
        greeting, body, note = (p % values[code] for p in _PARAGRAPHS[code])
        parts.append(f"{greeting}\n\n{body}\n\n{url}\n\n{note}\n")
    return "\n----------------------------------------\n\n".join(parts)


def _html(values: dict[str, dict[str, str]], first: str, second: str, url: str) -> str:
    link = html.escape(url, quote=True)
    sections = []
    for code in (first, second):
        greeting, body, note = (html.escape(p % values[code]) for p in _PARAGRAPHS[code])
        sections.append(
            f'<section lang="{code}"><p>{greeting}</p><p>{body}</p>'
            f'<p><a href="{link}">{link}</a></p><p>{note}</p></section>'
        )
    return (
        f'<!doctype html><html lang="{first}"><head><meta charset="utf-8">'
        f"<title>{html.escape(_SUBJECT.get(first) % values[first])}</title></head><body>"
        + "<hr>".join(sections)
        + "</body></html>\n"
    )


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
    first, second = _order(lang)
    dates = {"de": f"{valid_until:%d.%m.%Y}", "en": f"{valid_until:%Y-%m-%d}"}
    message = EmailMessage()
    message["Subject"] = " / ".join(
        _REMINDER_SUBJECT.get(code) % {"label": label.get(code)} for code in (first, second)
    )
    message["From"], message["To"] = sender, recipient
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    message["Content-Language"] = f"{first}, {second}"
    texts, pages = [], []
    for code in (first, second):
        values = {"label": label.get(code), "until": dates[code]}
        greeting, body, note = (p % values for p in _REMINDER[code])
        where = renewal_url or (renewal_desk.get(code) if renewal_desk else "")
        texts.append(f"{greeting}\n\n{body}\n\n{where}\n\n{note}\n")
        link = (f'<a href="{html.escape(where, quote=True)}">{html.escape(where)}</a>'
                if renewal_url else html.escape(where))  # fmt: skip
        pages.append(f'<section lang="{code}"><p>{html.escape(greeting)}</p>'
                     f"<p>{html.escape(body)}</p><p>{link}</p><p>{html.escape(note)}</p>"
                     "</section>")  # fmt: skip
    message.set_content("\n----------------------------------------\n\n".join(texts))
    message.add_alternative(
        f'<!doctype html><html lang="{first}"><head><meta charset="utf-8"><title>'
        f"{html.escape(str(message['Subject']))}</title></head><body>"
        + "<hr>".join(pages)
        + "</body></html>\n",
        subtype="html",
    )
    return message
