"""``wallet users``: staff accounts for the web console.

Passwords come from a hidden prompt (asked twice) or, for scripts, from the
first line of standard input with ``--password-stdin``: never from an
argument, which other users of the machine could read in the process list.
"""

from __future__ import annotations

import base64
import sys
import textwrap
from urllib.parse import urlsplit

import click
import qrcode
import qrcode.constants

from wallet.cli.context import Context, actor_option, pass_context
from wallet.cli.listing import Column, json_option, print_rows, when
from wallet.errors import InputError, NotFoundError, StateConflictError
from wallet.services import accounts, totp

password_stdin_option = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of a prompt.",
)


def _first_line_of_stdin() -> str:
    """The first line of standard input as UTF-8, read bounded (a password, not a file)."""
    raw = sys.stdin.buffer.readline(accounts.MAX_PASSWORD_LENGTH * 4 + 2)
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            "the password on standard input is not UTF-8 text; pipe it from a UTF-8 "
            "terminal or file",
            field="password",
        ) from None
    return line.removesuffix("\n").removesuffix("\r")


def read_password(*, from_stdin: bool) -> str:
    """The new password, from stdin or a confirmed hidden prompt; checked before hashing."""
    password: str
    if from_stdin:
        password = _first_line_of_stdin()
        if not password:
            raise InputError(
                "no password on standard input: pipe it in, e.g. "
                "`printf '%s\\n' \"$PW\" | wallet users add NAME --role ROLE --password-stdin`",
                field="password",
            )
    else:
        password = click.prompt(
            f"Password (at least {accounts.MIN_PASSWORD_LENGTH} characters)",
            hide_input=True,
            confirmation_prompt="Repeat the password",
        )
    if len(password) < accounts.MIN_PASSWORD_LENGTH:
        raise InputError(
            f"the password must have at least {accounts.MIN_PASSWORD_LENGTH} characters; "
            "choose a longer one (a passphrase of a few words is easiest)",
            field="password",
        )
    return password


@click.group()
def users() -> None:
    """Staff accounts (console logins) with a role: admin, issuer or verifier."""


@users.command()
@click.argument("username")
@click.option("--role", type=click.Choice(accounts.ROLES), required=True, help="What it may do.")
@password_stdin_option
@actor_option
@pass_context
def add(obj: Context, username: str, role: str, password_stdin: bool) -> None:
    """Create a staff account."""
    with obj.transaction(write=False) as session:  # fail before asking for a password
        try:
            accounts.get_user(session, username)
        except NotFoundError:
            pass
        else:
            raise StateConflictError(
                f"a user {username} exists already; change its password with "
                f"`wallet users passwd {username}`"
            )
    password = read_password(from_stdin=password_stdin)
    with obj.transaction(write=True) as session:
        row = accounts.add_user(
            session,
            username=username,
            password=password,
            role=role,
            actor=obj.actor,
            audit_key=obj.services.audit_key,
            now=obj.now(),
        )
    click.echo(f"added user {row.username} (role {row.role})")


@users.command(name="list")
@json_option
@pass_context
def list_users(obj: Context, as_json: bool) -> None:
    """Show every account with its role, state and second factor (TOTP, or the provider's)."""
    with obj.transaction(write=False) as session:
        rows = accounts.list_users(session)
        factors = totp.second_factors(session)
    print_rows(
        rows,
        as_json=as_json,
        to_json=lambda r: {
            "username": r.username,
            "role": r.role,
            "disabled": r.disabled,
            "created_at": r.created_at.isoformat(),
            "last_login_at": r.last_login_at.isoformat() if r.last_login_at else None,
            "second_factor": factors.get(r.username, "none"),
        },
        columns=[
            Column("USERNAME", 24, lambda r: r.username),
            Column("ROLE", 8, lambda r: r.role),
            Column("STATE", 8, lambda r: "disabled" if r.disabled else "active"),
            Column("2ND FACTOR", 10, lambda r: factors.get(r.username, "none")),
            Column("CREATED", 16, lambda r: when(r.created_at)),
            Column("LAST LOGIN", 0, lambda r: when(r.last_login_at)),
        ],
        empty="no users yet: add one with `wallet users add NAME --role admin`",
    )


@users.command()
@click.argument("username")
@actor_option
@pass_context
def disable(obj: Context, username: str) -> None:
    """Lock an account out of the console (it stays in the audit log); its sessions end."""
    with obj.transaction(write=True) as session:
        row = accounts.get_user(session, username)
        if row.disabled:
            click.echo(f"user {username} is already disabled")
            return
        accounts.disable_user(
            session,
            username=username,
            actor=obj.actor,
            audit_key=obj.services.audit_key,
            now=obj.now(),
        )
    click.echo(f"disabled user {username}")


@users.command("set-role")
@click.argument("username")
@click.option("--role", type=click.Choice(accounts.ROLES), required=True, help="What it may do.")
@actor_option
@pass_context
def set_role(obj: Context, username: str, role: str) -> None:
    """Give an account another role; its open console sessions end."""
    with obj.transaction(write=True) as session:
        row = accounts.get_user(session, username)
        if row.role == role:
            click.echo(f"user {username} has the role {role} already")
            return
        accounts.set_role(
            session,
            username=username,
            role=role,
            actor=obj.actor,
            audit_key=obj.services.audit_key,
            now=obj.now(),
        )
    click.echo(f"user {username} now has the role {role}; their console sessions have ended")


@users.command()
@click.argument("username")
@password_stdin_option
@actor_option
@pass_context
def passwd(obj: Context, username: str, password_stdin: bool) -> None:
    """Set a new password for an account."""
    with obj.transaction(write=False) as session:
        accounts.get_user(session, username)  # fail before asking for a password
    password = read_password(from_stdin=password_stdin)
    with obj.transaction(write=True) as session:
        accounts.set_password(
            session,
            username=username,
            password=password,
            actor=obj.actor,
            audit_key=obj.services.audit_key,
            now=obj.now(),
        )
    click.echo(f"changed the password of {username}")


def _print_qr(text: str) -> None:
    """A QR code of ``text`` in the terminal (two rows per line, scannable from a screen)."""
    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(text)
    qr.make(fit=True)
    rows = qr.get_matrix()
    if len(rows) % 2:
        rows = [*rows, [False] * len(rows[0])]
    blocks = {(False, False): "\u2588", (True, False): "\u2584", (False, True): "\u2580"}
    for top, bottom in zip(rows[::2], rows[1::2], strict=True):
        click.echo("".join(blocks.get((t, b), " ") for t, b in zip(top, bottom, strict=True)))


@users.command(name="totp")
@click.argument("username")
@click.option("--remove", is_flag=True, help="Forget the account's TOTP secret (a lost phone).")
@actor_option
@pass_context
def totp_command(obj: Context, username: str, remove: bool) -> None:
    """Set up a TOTP second factor (an authenticator app) for a local account.

    Shows a QR code (and the key to type in) for the app, then asks for the code
    the app shows, so a badly scanned code cannot lock the account out. The
    secret is made here and shown only on this terminal, never taken from or put
    on a command line; it is stored sealed with the instance key.
    """
    with obj.transaction(write=False) as session:
        accounts.get_user(session, username)  # fail before showing anything
        enrolled = totp.is_enrolled(session, username)
    if remove:
        with obj.transaction(write=True) as session:
            totp.remove(session, username=username, actor=obj.actor,
                        audit_key=obj.services.audit_key, now=obj.now())  # fmt: skip
        click.echo(
            f"removed the TOTP second factor of {username}"
            if enrolled
            else f"{username} had no TOTP second factor"
        )
        return
    enrolment = totp.Enrolment.new()
    label = urlsplit(obj.settings.public_url).hostname or "wallet"
    uri = enrolment.uri(account=username, issuer=label)
    click.echo(f"Scan this with the authenticator app of {username} (it replaces any older one):")
    _print_qr(uri)
    key = base64.b32encode(enrolment.secret).decode("ascii").rstrip("=")
    click.echo("Or type this key into the app: " + " ".join(textwrap.wrap(key, 4)))
    code = click.prompt("The six-digit code the app shows now", default="", show_default=False)
    with obj.transaction(write=True) as session:
        totp.enrol(
            session,
            username=username,
            enrolment=enrolment,
            code=code,
            actor=obj.actor,
            audit_key=obj.services.audit_key,
            now=obj.now(),
        )
    click.echo(f"TOTP set up for {username}: the console asks for a code at every sign-in")
