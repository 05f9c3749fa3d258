"""Letters for holders without e-mail, from an import's result: sorted by postcode.

A claim link exists in clear only in the import's result file, so the letters
are made from it: each row whose link went into the file (channel ``link``) and
whose holder has a postal address gets a letter. A link replaced or expired
since is left out and named, as is a row without an address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from wallet.formats.letter import Letter
from wallet.passtypes import PLATE_SEPARATOR
from wallet.services import passes, wallets
from wallet.services.context import Services
from wallet.store.models import ClaimLinkRow, HolderContactRow, PassRow


@dataclass
class LetterPlan:
    letters: list[Letter] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (serial, why)


def _recipient(row: PassRow, contact: HolderContactRow) -> tuple[str, ...]:
    name: tuple[str, ...] = (row.holder.get("name") or "",)
    plates = row.holder.get("plate", "")
    if not name[0] and PLATE_SEPARATOR in plates:  # a second car: the plates fill a line
        name = ("Halterin/Halter der Fahrzeuge", plates)
    elif not name[0] and plates:
        name = (f"Halterin/Halter des Fahrzeugs {plates}",)
    city = f"{contact.postcode or ''} {contact.city or ''}".strip()
    return tuple(line for line in (*name, contact.street or "", city) if line)


def plan_letters(
    session: Session, services: Services, links: Iterable[tuple[str, str]], *, now: datetime
) -> LetterPlan:
    """Letters for (serial, claim URL) pairs, sorted by postcode then street."""
    plan = LetterPlan()
    prefix = f"{services.settings.public_url}/p/"
    for serial, url in links:
        if not url.startswith(prefix):
            plan.left_out.append((serial, "no claim link of this service"))
            continue
        link = session.scalars(
            select(ClaimLinkRow).where(
                ClaimLinkRow.token_hash == passes.hash_secret(url.removeprefix(prefix))
            )
        ).first()
        if link is None or link.replaced_at is not None or link.expires_at <= now:
            plan.left_out.append((serial, "the link was replaced or has expired"))
            continue
        row = link.pass_
        contact = session.get(HolderContactRow, row.id)
        if contact is None or not (contact.street and contact.postcode and contact.city):
            plan.left_out.append((serial, "no postal address"))
            continue
        plan.letters.append(
            Letter(
                recipient=_recipient(row, contact),
                postcode=contact.postcode,
                claim_url=url,
                wallet_pass=wallets.wallet_pass(services, row),
                valid_until=link.expires_at,
            )
        )
    plan.letters.sort(key=lambda letter: (letter.postcode, letter.recipient[1:]))
    return plan
