"""``wallet doctor``: name what is wrong with the wallet set-up before citizens notice."""

from __future__ import annotations

from pathlib import Path

import click

from wallet.cli.context import Context, pass_context
from wallet.errors import WalletError
from wallet.formats.doctor import Finding
from wallet.services import doctor as service


class DoctorFoundProblems(WalletError):
    code = "doctor_found_problems"


@click.command()
@click.argument("items", nargs=-1, metavar="[FILE.pkpass | SAVE-LINK]...")
@pass_context
def doctor(obj: Context, items: tuple[str, ...]) -> None:
    """Check the Apple/Google configuration, the identity provider (with WALLET_OIDC_ISSUER),
    and any .pkpass file or Google save link given.

    Exits 1 if anything is wrong (warnings alone exit 0).
    """
    now = obj.now()
    sections: list[tuple[str, list[Finding]]] = [
        ("configuration", service.check_configuration(obj.services, now=now))
    ]
    if obj.settings.oidc_enabled:
        sections.append(("identity provider", service.check_oidc(obj.settings)))
    try:
        with obj.transaction(write=False) as session:
            sections.append(("outbox", service.check_outbox(session, now=now)))
    except WalletError as exc:
        sections.append(("outbox", [Finding("database-unreachable", exc.message, "warning")]))
    for item in items:
        if item.startswith("https://"):
            sections.append(
                (f"save link {item[:48]}…", service.check_save_link(item, obj.services))
            )
            continue
        path = Path(item)
        try:
            data = path.read_bytes()
        except OSError as exc:
            sections.append(
                (item, [Finding("file-unreadable", f"cannot read {item}: {exc.strerror}")])
            )
            continue
        sections.append((item, service.check_pkpass_file(data, obj.services, now=now)))
    errors = 0
    for title, findings in sections:
        if not findings:
            click.echo(f"ok       {title}")
            continue
        for finding in findings:
            errors += finding.severity == "error"
            label = "ERROR" if finding.severity == "error" else "warning"
            click.echo(f"{label:8} {title}: [{finding.code}] {finding.message}")
    if errors:
        raise DoctorFoundProblems(f"{errors} problem{'s' if errors != 1 else ''} found; see above")
