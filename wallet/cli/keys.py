"""``wallet keys``: generate, list, rotate, retire and revoke signing keys."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import click

from wallet.cli.context import Context
from wallet.cli.listing import Column, json_option, print_rows, when
from wallet.errors import PassTypeError, WalletError
from wallet.keys import ALGORITHMS, KeyInfo, KeyPhase, KeyRole, KeyState, check_takeover

pass_context = click.make_pass_decorator(Context)

# Keys made before kids were drawn without a leading "-" may still start with
# one; click would read such a kid as an unknown option. These commands have
# no short options, so an unknown one can only be the kid.
KID_ARGUMENT = {"ignore_unknown_options": True}


_DURATION = re.compile(r"\+(?:(\d{1,5})d)?(?:(\d{1,5})h)?(?:(\d{1,5})m)?")


def parse_at(text: str, *, now: datetime) -> datetime:
    """``--at``: an ISO 8601 time with its UTC offset, or "+" and a span ("+8d", "+7d12h")."""
    text = text.strip()
    span = _DURATION.fullmatch(text)
    if span and any(span.groups()):
        days, hours, minutes = (int(part or 0) for part in span.groups())
        return now + timedelta(days=days, hours=hours, minutes=minutes)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time: give an ISO 8601 time with its offset "
            "(2026-12-01T06:00+01:00, 2026-12-01T05:00Z) or a span from now (+8d, +7d12h, +90m)",
            param_hint="'--at'",
        ) from None
    if moment.tzinfo is None:
        raise click.BadParameter(
            f"{text!r} has no UTC offset, so servers in other time zones would read it "
            "differently: add one (+01:00, Z)",
            param_hint="'--at'",
        )
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise click.BadParameter(f"{text!r} is out of range", param_hint="'--at'") from None


def _utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _say_called_off(info: KeyInfo, reopened: list[str]) -> bool:
    """Say what calling a staged key off means for the keys it was to replace."""
    if not reopened:
        return False
    click.echo(
        f"{info.kid} was staged to take over {', '.join(sorted(info.pass_types))} at "
        f"{_utc(info.not_before)}; called off: {', '.join(reopened)} signs on, with no end "
        "date (stage a new rotation with `wallet keys rotate --at`)",
        err=True,
    )
    return True


def _audit(obj: Context, *, action: str, kid: str, details: dict[str, object]) -> None:
    """Record a key action in the audit log; keys live in files, so this comes after.

    A key ceremony may run on a machine without the database: the action then
    stands, with a warning that the log misses it.
    """
    from wallet.services import audit

    try:
        with obj.transaction(write=True) as session:
            audit.record(
                session, key=obj.services.audit_key, actor=obj.actor, action=action,
                target=f"key:{kid}", details=details, now=obj.now(),
            )  # fmt: skip
    except WalletError as exc:
        click.echo(f"warning: not written to the audit log: {exc.message}", err=True)


@click.group()
def keys() -> None:
    """Manage the signing keys (private parts stay in WALLET_SIGNING_KEYS_DIR)."""


@keys.command()
@click.option("--alg", type=click.Choice(ALGORITHMS), default="ES256", show_default=True)
@click.option(
    "--pass-type",
    "pass_types",
    multiple=True,
    metavar="TYPE",
    help="Pass type the key may sign (repeatable; default: every defined type).",
)
@click.option("--root", is_flag=True, help="Create the trust-root key that signs bundles.")
@click.option("--valid-days", type=click.IntRange(1, 3660), help="End of the signing window.")
@pass_context
def generate(
    obj: Context, alg: str, pass_types: tuple[str, ...], root: bool, valid_days: int | None
) -> None:
    """Create a new key; it signs from now on."""
    now = obj.now()
    if root:
        if pass_types:
            raise click.UsageError("the trust-root key signs bundles only: drop --pass-type")
        types: frozenset[str] = frozenset()
    else:
        known = obj.pass_types
        unknown = sorted(set(pass_types) - known.keys())
        if unknown:
            raise PassTypeError(
                f"unknown pass type {', '.join(unknown)}; defined: {', '.join(sorted(known))}"
            )
        types = frozenset(pass_types or known)
    key = obj.keystore.generate(
        alg=alg,  # type: ignore[arg-type]  # click.Choice guarantees an Algorithm
        role=KeyRole.ROOT if root else KeyRole.PASS,
        pass_types=types,
        now=now,
        not_after=now + timedelta(days=valid_days) if valid_days else None,
    )
    what = "trust-root key" if root else f"signing key for {', '.join(sorted(types))}"
    click.echo(f"created {what}: {key.kid} ({key.info.alg})")
    _audit(
        obj,
        action="key.generate",
        kid=key.kid,
        details={"alg": key.info.alg, "role": key.info.role.value, "types": sorted(types)},
    )


@keys.command(name="list")
@json_option
@pass_context
def list_keys(obj: Context, as_json: bool) -> None:
    """Show every key with its state now (staged keys: when they take over)."""
    now = obj.now()
    found = obj.keystore.public_keys()
    print_rows(
        found,
        as_json=as_json,
        to_json=lambda k: {**k.info.to_json(), "phase": k.info.phase(now).value},
        columns=[
            Column("KID", 10, lambda k: k.info.kid),
            Column("ALG", 6, lambda k: k.info.alg),
            Column("ROLE", 5, lambda k: k.info.role.value),
            Column("STATE", 8, lambda k: k.info.phase(now).value),
            Column("FROM", 17, lambda k: when(k.info.not_before)),
            Column("UNTIL", 17, lambda k: when(k.info.not_after)),
            Column("TYPES", 0, lambda k: ",".join(sorted(k.info.pass_types)) or "-"),
        ],
        empty="no keys yet: create them with `wallet keys generate` (and --root)",
    )
    if as_json:
        return
    for key in found:
        if key.info.phase(now) is KeyPhase.STAGED:
            click.echo(
                f"{key.kid} takes over signing {', '.join(sorted(key.info.pass_types))} "
                f"at {_utc(key.info.not_before)}"
            )


@keys.command(context_settings=KID_ARGUMENT)
@click.argument("kid", required=False)
@click.option("--alg", type=click.Choice(ALGORITHMS), help="Algorithm of the new key.")
@click.option(
    "--at",
    "at_text",
    metavar="TIME",
    help="Stage it: the new key is published now and signs from TIME on every server "
    "(ISO 8601 with offset, or +8d, +7d12h); at least WALLET_BUNDLE_LIFETIME and an hour ahead.",
)
@pass_context
def rotate(obj: Context, kid: str | None, alg: str | None, at_text: str | None) -> None:
    """Replace an active pass key: the new one signs (now, or from --at), the old one retires."""
    store = obj.keystore
    now = obj.now()
    at = None
    if at_text is not None:
        lifetime = timedelta(seconds=obj.settings.bundle_lifetime)
        at = check_takeover(parse_at(at_text, now=now), now=now, bundle_lifetime=lifetime)
    if kid is None:
        active = [
            k
            for k in store.public_keys()
            if k.info.role is KeyRole.PASS and k.info.phase(now) is KeyPhase.ACTIVE
        ]
        if len(active) != 1:
            names = ", ".join(k.kid for k in active) or "none"
            raise click.UsageError(f"name the key to rotate (active pass keys: {names})")
        kid = active[0].kid
    new = store.rotate(kid, alg=alg, now=now, at=at)  # type: ignore[arg-type]
    details: dict[str, object] = {"new": new.kid, "alg": new.info.alg}
    if at is None:
        click.echo(f"rotated {kid} -> {new.kid}; {kid} is retired and still verifies its passes")
    else:
        details["at"] = at.isoformat()
        click.echo(
            f"staged {kid} -> {new.kid}: {new.kid} is published now (JWKS, trust bundle) and "
            f"signs from {_utc(at)}; {kid} signs until then, then retires and still verifies "
            "its passes"
        )
        click.echo(
            f"copy {obj.settings.signing_keys_dir} to every server now: one without the copy "
            f"at {_utc(at)} goes on signing with {kid}, and devices refuse those passes"
        )
    _audit(obj, action="key.rotate", kid=kid, details=details)


@keys.command(context_settings=KID_ARGUMENT)
@click.argument("kid")
@pass_context
def retire(obj: Context, kid: str) -> None:
    """Stop signing with a key; passes it signed stay valid."""
    now = obj.now()
    key = obj.keystore.get(kid)
    reopened = obj.keystore.call_off(key, now=now)
    obj.keystore.retire(kid, now=now)
    click.echo(f"retired {kid}; it verifies what it signed until now")
    _say_called_off(key.info, reopened)
    _audit(obj, action="key.retire", kid=kid, details={})


@keys.command(context_settings=KID_ARGUMENT)
@click.argument("kid")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def revoke(obj: Context, kid: str, yes: bool) -> None:
    """Distrust a compromised key: EVERY pass it signed fails verification."""
    key = obj.keystore.get(kid)
    if not yes:
        click.confirm(
            f"Revoke {kid}? Every pass it signed will be refused after the next sync.",
            abort=True,
        )
    reopened = obj.keystore.call_off(key, now=obj.now())
    obj.keystore.revoke(kid, now=obj.now())
    click.echo(f"revoked {kid}")
    _audit(obj, action="key.revoke", kid=kid, details={})
    if key.info.role is not KeyRole.PASS or _say_called_off(key.info, reopened):
        return
    if key.info.state is KeyState.ACTIVE:
        click.echo(
            "warning: no new passes can be signed for "
            f"{', '.join(sorted(key.info.pass_types))} until you generate a new key",
            err=True,
        )


@keys.command()
@pass_context
def jwks(obj: Context) -> None:
    """Print the public JWKS (active and retired pass keys) for /.well-known/jwks.json."""
    published = [
        k.jwk()
        for k in obj.keystore.public_keys()
        if k.info.role is KeyRole.PASS and k.info.state is not KeyState.REVOKED
    ]
    click.echo(json.dumps({"keys": published}, indent=2))
