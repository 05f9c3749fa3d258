"""``wallet passes``: issue, find, show, revoke, suspend, reinstate, reissue and renew passes.

Each command is one transaction: it commits with its audit entry or not at all.
A revocation from a file runs one transaction per serial, so one bad line
never undoes the others.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from wallet.cli.context import Context, actor_option, pass_context
from wallet.cli.renewals import renew
from wallet.cli.serials import SERIAL_COMMAND, aware_time, file_name, read_serials
from wallet.domain import MAX_REASON_LENGTH, PASS_STATES, PassRecord, PassState
from wallet.errors import (
    HolderDataError,
    InputError,
    NotFoundError,
    StateConflictError,
    WalletError,
)
from wallet.formats.qr import render_png, render_svg
from wallet.services import audit, claim_mail, outbox
from wallet.services import passes as service


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"


def issued_json(issued: service.IssuedPass, *, public_url: str) -> dict[str, Any]:
    """A new pass as the API shows it, with its claim link (shown this once)."""
    return issued.to_json(public_url)


def _holder(fields: tuple[str, ...], holder_json: IO[str] | None) -> dict[str, object]:
    if fields and holder_json is not None:
        raise click.UsageError("give the holder either as --field NAME=VALUE or --holder-json")
    holder: dict[str, object] = {}
    if holder_json is not None:
        try:
            loaded = json.load(holder_json)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(
                f"--holder-json is not JSON: {exc}; give an object like "
                '{"card_number": "100200300400", "name": "Erika Mustermann"}',
                field="holder",
            ) from exc
        if not isinstance(loaded, dict):
            raise InputError("--holder-json must hold one JSON object", field="holder")
        holder = loaded
    for item in fields:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--field takes NAME=VALUE (got {item!r})")
        if name in holder:
            raise click.UsageError(f"--field {name} is given twice")
        holder[name] = value
    return holder


def _field_hint(obj: Context, type_id: str) -> str:
    pass_type = obj.pass_types.get(type_id)
    if pass_type is None:
        return ""
    names = ", ".join(f.name for f in pass_type.fields)
    return f" (a {type_id} pass takes --field NAME=VALUE for each of: {names})"


def _check_out_file(path: Path | None) -> None:
    if path is not None and not path.parent.is_dir():
        raise click.BadParameter(f"the folder {path.parent} does not exist", param_hint=str(path))


@click.group()
def passes() -> None:
    """Passes: issue them and change their state; every change is audited."""


@passes.command()
@click.option("--type", "type_id", required=True, metavar="TYPE", help="Pass type id.")
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="NAME=VALUE",
    help="A holder field (repeat for each field of the type).",
)
@click.option(
    "--holder-json",
    type=click.File("r", encoding="utf-8"),
    metavar="FILE|-",
    help="The holder fields as one JSON object (- for standard input).",
)
@click.option("--valid-from", callback=aware_time, metavar="DATETIME", help="Start (default: now).")
@click.option(
    "--valid-until",
    callback=aware_time,
    metavar="DATETIME",
    help="End (default: the type's longest validity).",
)
@click.option(
    "--qr-png",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the QR code as PNG.",
)
@click.option(
    "--qr-svg",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the QR code as SVG.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new pass as JSON.")
@actor_option
@pass_context
def issue(
    obj: Context,
    type_id: str,
    fields: tuple[str, ...],
    holder_json: IO[str] | None,
    valid_from: datetime | None,
    valid_until: datetime | None,
    qr_png: Path | None,
    qr_svg: Path | None,
    as_json: bool,
) -> None:
    """Sign a new pass; prints its serial, claim URL (once) and QR text."""
    holder = _holder(fields, holder_json)
    _check_out_file(qr_png)
    _check_out_file(qr_svg)
    public_url = obj.settings.public_url
    try:
        with obj.transaction(write=True, signs=True) as session:
            issued = service.issue_pass(
                session,
                obj.services,
                type_id=type_id,
                holder=holder,
                valid_from=valid_from,
                valid_until=valid_until,
                actor=obj.actor,
                now=obj.now(),
            )
            # Rendered before the commit: a code that cannot be drawn issues nothing.
            png = render_png(issued.record.qr_text) if qr_png else None
            svg = (
                render_svg(issued.record.qr_text, title=f"{type_id} {issued.record.serial}")
                if qr_svg
                else None
            )
    except HolderDataError as exc:
        raise HolderDataError(exc.message + _field_hint(obj, type_id), field=exc.field) from exc
    row = issued.record
    if as_json:
        data = issued_json(issued, public_url=public_url)
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(f"issued {row.pass_type} pass {row.serial}")
        click.echo(f"  valid:     {_when(row.valid_from)} until {_when(row.valid_until)}")
        click.echo(f"  claim URL: {issued.claim_url(public_url)}")
        click.echo("             (shown only now: the link's secret is stored hashed)")
        click.echo(f"  QR text:   {row.qr_text}")
    for path, content in ((qr_png, png), (qr_svg, svg.encode() if svg else None)):
        if path is None or content is None:
            continue
        try:
            path.write_bytes(content)
        except OSError as exc:
            raise WalletError(
                f"pass {row.serial} was issued, but {path} cannot be written "
                f"({exc.strerror}); the QR text above is the same code"
            ) from exc
        click.echo(f"wrote the QR code to {path}", err=as_json)


@passes.command(name="list")
@click.option("--type", "type_id", metavar="TYPE", help="Only this pass type.")
@click.option("--state", type=click.Choice(PASS_STATES), help="Only this state.")
@click.option("--q", "text", metavar="TEXT", help="Holder text (or an exact serial) to find.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def list_passes(
    obj: Context,
    type_id: str | None,
    state: str | None,
    text: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Passes newest first, filtered by type, state and holder text."""
    if type_id is not None:
        obj.services.pass_type(type_id)  # an unknown type is a typo, not an empty result
    with obj.transaction(write=False) as session:
        page = service.list_passes(
            session, type_id=type_id, state=state, text=text, limit=limit, offset=offset
        )
        found = [record.to_json() for record in page.items]
    if as_json:
        click.echo(json.dumps({"total": page.total, "passes": found}, indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("no passes match")
        return
    click.echo(f"{'SERIAL':18} {'TYPE':8} {'STATE':9} {'VALID UNTIL':11} HOLDER")
    for p in found:
        holder = ", ".join(p["holder"].values())
        click.echo(
            f"{p['serial']:18} {p['type']:8} {p['state']:9} {p['valid_until'][:10]:11} {holder}"
        )
    shown = f"{offset + 1}-{offset + len(found)}"
    click.echo(f"{shown} of {page.total} passes", err=True)


_DAYS_PER_UNIT = {"d": 1, "w": 7}
if TYPE_CHECKING:  # click's ParamType is generic only in newer releases
    _ParamType = click.ParamType[timedelta]
else:
    _ParamType = click.ParamType


class Duration(_ParamType):
    """A span like 30d, 4w or 90 (days)."""

    name = "duration"

    def convert(self, value: object, param: Any, ctx: Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        unit = _DAYS_PER_UNIT.get(text[-1:], 0)
        number = text[:-1] if unit else text
        if not number.isdigit() or not 1 <= int(number) * (unit or 1) <= 366:
            self.fail(f"{value!r} is not a span like 30d, 4w or 90 (1 to 366 days)", param, ctx)
        return timedelta(days=int(number) * (unit or 1))


@passes.command()
@click.option(
    "--within",
    type=Duration(),
    default="30d",
    show_default=True,
    help="How soon: 30d, 4w, or a number of days.",
)
@click.option("--type", "type_id", metavar="TYPE", help="Only this pass type.")
@click.option("--limit", type=click.IntRange(1, 500), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def expiring(
    obj: Context, within: timedelta, type_id: str | None, limit: int, as_json: bool
) -> None:  # fmt: skip
    """Passes that run out soon (not revoked), soonest first: what to renew."""
    if type_id is not None:
        obj.services.pass_type(type_id)
    with obj.transaction(write=False) as session:
        page = service.list_passes(session, type_id=type_id, limit=limit,
                                   expiring_within=within, now=obj.now())  # fmt: skip
    found = [record.to_json() for record in page.items]
    if as_json:
        click.echo(json.dumps({"total": page.total, "passes": found}, indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo(f"no pass runs out within {within.days} days")
        return
    click.echo(f"{'SERIAL':18} {'TYPE':8} {'STATE':9} {'VALID UNTIL':11}")
    for p in found:
        click.echo(f"{p['serial']:18} {p['type']:8} {p['state']:9} {p['valid_until'][:10]:11}")
    click.echo(f"{len(found)} of {page.total} passes run out within {within.days} days", err=True)


@passes.command(context_settings=SERIAL_COMMAND)
@click.argument("serial")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def show(obj: Context, serial: str, as_json: bool) -> None:
    """One pass with its audit trail."""
    with obj.transaction(write=False) as session:
        record = service.get_pass(session, serial)
        # Staff may reprint a pass: the token is not secret (it is in the QR code);
        # the claim link is, and is never shown again.
        data = record.to_json()
        slot = service.status_slot(session, record.serial)
        data["status_list"] = {"name": slot.list_name, "idx": slot.idx}
        data["update_tag"] = slot.update_tag
        trail = [e.to_json() for e in audit.trail(session, record.serial)]
        data["wallet_deliveries"] = asdict(outbox.deliveries_of(session, record.serial))
    if as_json:
        click.echo(json.dumps({**data, "audit": trail}, indent=2, ensure_ascii=False))
        return
    click.echo(f"serial:      {data['serial']}")
    click.echo(f"type:        {data['type']}")
    click.echo(f"state:       {data['state']}" + (f" ({data['reason']})" if data["reason"] else ""))
    for name, value in data["holder"].items():
        click.echo(f"{name + ':':12} {value}")
    click.echo(f"valid:       {data['valid_from'][:16]} until {data['valid_until'][:16]} (UTC)")
    click.echo(f"status list: {data['status_list']['name']} index {data['status_list']['idx']}")
    click.echo(f"signed by:   key {data['kid']}")
    if data["replaces"]:
        click.echo(f"replaces:    {data['replaces']}")
    if data["replaced_by"]:
        click.echo(f"replaced by: {data['replaced_by']}")
    wallet = data["wallet_deliveries"]
    click.echo(
        f"wallet apps: {wallet['apple_devices']} Apple devices registered; updates "
        f"{wallet['pending']} waiting, {wallet['delivered']} delivered, {wallet['failed']} given up"
    )
    click.echo(f"QR text:     {data['qr_text']}")
    click.echo("audit trail (newest first):")
    for e in trail:
        details = ", ".join(f"{k}={v}" for k, v in e["details"].items() if v is not None)
        click.echo(f"  #{e['id']:<6} {e['at'][:19]}  {e['actor']:20} {e['action']:14} {details}")


def _change(obj: Context, serial: str, *, action: str, reason: str | None) -> PassRecord:
    with obj.transaction(write=True) as session:
        return service.change_state(
            session, obj.services, serial, action=action, reason=reason, actor=obj.actor,
            now=obj.now(),
        )  # fmt: skip


reason_option = click.option(
    "--reason", metavar="TEXT", help="Why (kept in the pass and the audit log)."
)


@dataclass
class RevokeReport:
    revoked: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unknown and not self.failed


def revoke_many(obj: Context, serials: list[str], *, reason: str) -> RevokeReport:
    report = RevokeReport()
    with click.progressbar(serials, label="revoking", file=sys.stderr, show_pos=True) as bar:
        for serial in bar:
            try:
                with obj.transaction(write=True) as session:
                    if service.get_pass(session, serial).state is PassState.REVOKED:
                        report.already.append(serial)
                        continue
                    service.change_state(
                        session, obj.services, serial, action="revoke", reason=reason,
                        actor=obj.actor, now=obj.now(),
                    )  # fmt: skip
                report.revoked.append(serial)
            except NotFoundError:
                report.unknown.append(serial)
            except WalletError as exc:
                report.failed.append((serial, exc.message))
    return report


@passes.command(context_settings=SERIAL_COMMAND)
@click.argument("serial", required=False)
@click.option(
    "--from-file",
    type=click.File("rb"),
    metavar="FILE|-",
    help="Revoke every serial in FILE (one a line; blank lines and # comments are skipped).",
)
@click.option("--reason", required=True, metavar="TEXT", help="Why (kept in the audit log).")
@actor_option
@pass_context
def revoke(obj: Context, serial: str | None, from_file: IO[bytes] | None, reason: str) -> None:
    """Revoke a pass for good; verifiers see it at their next sync."""
    if (serial is None) == (from_file is None):
        raise click.UsageError("give either a SERIAL or --from-file FILE")
    if not reason.strip() or len(reason) > MAX_REASON_LENGTH:
        raise click.BadParameter(
            f"give a reason of 1-{MAX_REASON_LENGTH} characters", param_hint="--reason"
        )
    if serial is not None:
        with obj.transaction(write=False) as session:
            current = service.get_pass(session, serial)
            if current.state == "revoked":
                raise StateConflictError(
                    f"pass {serial} is already revoked ({current.reason or 'no reason given'}); "
                    "nothing changed"
                )
        row = _change(obj, serial, action="revoke", reason=reason)
        click.echo(f"revoked {row.serial}; verifiers learn it at their next sync")
        return
    assert from_file is not None
    serials, duplicates = read_serials(from_file)
    if not serials:
        raise InputError(
            f"no serials in {file_name(from_file)}: put one serial on each line", field="from_file"
        )
    report = revoke_many(obj, serials, reason=reason)
    click.echo(
        f"{len(report.revoked)} revoked, {len(report.already)} already revoked, "
        f"{len(report.unknown)} unknown"
        + (f", {len(report.failed)} failed" if report.failed else "")
        + (
            f" ({duplicates} repeated line{'s' if duplicates != 1 else ''} skipped)"
            if duplicates
            else ""
        )
    )
    for unknown in report.unknown:
        click.echo(f"unknown: {unknown}")
    for failed, message in report.failed:
        click.echo(f"failed:  {failed}: {message}")
    if not report.ok:
        click.echo(
            "error: some serials were not revoked (listed above); the others are revoked. "
            "Check the listed ones and run again with just those.",
            err=True,
        )
        raise click.exceptions.Exit(1)


@passes.command(context_settings=SERIAL_COMMAND)
@click.argument("serial")
@reason_option
@actor_option
@pass_context
def suspend(obj: Context, serial: str, reason: str | None) -> None:
    """Suspend a pass for now (types that allow it); reinstate undoes it."""
    row = _change(obj, serial, action="suspend", reason=reason)
    click.echo(f"suspended {row.serial}; `wallet passes reinstate {row.serial}` undoes it")


@passes.command(context_settings=SERIAL_COMMAND)
@click.argument("serial")
@reason_option
@actor_option
@pass_context
def reinstate(obj: Context, serial: str, reason: str | None) -> None:
    """Make a suspended pass valid again."""
    row = _change(obj, serial, action="reinstate", reason=reason)
    click.echo(f"reinstated {row.serial}; it is valid again")


@passes.command(context_settings=SERIAL_COMMAND)
@click.argument("serial")
@reason_option
@click.option("--json", "as_json", is_flag=True, help="Print the new pass as JSON.")
@actor_option
@pass_context
def reissue(obj: Context, serial: str, reason: str | None, as_json: bool) -> None:
    """Lost phone: a new serial and claim link for the same holder; the old pass is revoked."""
    public_url = obj.settings.public_url
    with obj.transaction(write=True, signs=True) as session:
        issued = service.reissue_pass(
            session, obj.services, serial, reason=reason, actor=obj.actor, now=obj.now()
        )
    if as_json:
        data = issued_json(issued, public_url=public_url)
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(f"reissued {serial} as {issued.record.serial}; {serial} is revoked")
    click.echo(f"  claim URL: {issued.claim_url(public_url)}")
    click.echo("             (shown only now: the link's secret is stored hashed)")
    click.echo(f"  QR text:   {issued.record.qr_text}")


@passes.command(name="new-link", context_settings=SERIAL_COMMAND)
@click.argument("serial")
@reason_option
@click.option(
    "--email",
    metavar="ADDRESS",
    help="Send the new link to this address (through the outbox) instead of printing it.",
)
@click.option(
    "--lang", type=click.Choice(["de", "en"]), default="de", show_default=True,
    help="The holder's language: it comes first in the e-mail.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the pass and its new link as JSON.")
@actor_option
@pass_context
def new_link(
    obj: Context, serial: str, reason: str | None, email: str | None, lang: str, as_json: bool
) -> None:
    """The holder lost their link: make a new one; every older link then says "replaced"."""
    public_url = obj.settings.public_url
    if email is not None:
        with obj.transaction(write=True) as session:
            claim_mail.email_claim_link(
                session, obj.services, serial, email=email, lang=lang, reason=reason,
                actor=obj.actor, now=obj.now(),
            )  # fmt: skip
        click.echo(f"a new claim link for {serial} is queued for e-mail; `wallet worker` sends it")
        return
    with obj.transaction(write=True) as session:
        issued = service.replace_claim_link(
            session, obj.services, serial, reason=reason, actor=obj.actor, now=obj.now()
        )
    if as_json:
        click.echo(json.dumps(issued_json(issued, public_url=public_url), indent=2))
        return
    click.echo(f"new claim link for {serial}; older links now show that they were replaced")
    click.echo(f"  claim URL: {issued.claim_url(public_url)}")
    click.echo("             (shown only now: the link's secret is stored hashed)")


passes.add_command(renew)
