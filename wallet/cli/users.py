"""``wallet users``: staff accounts for the web console.

Passwords come from a hidden prompt (asked twice) or, for scripts, from the
first line of standard input with ``--password-stdin``: never from an
argument, which other users of the machine could read in the process list.
"""

from __future__ import annotations

import json
import sys

import click
from sqlalchemy.orm import Session

from wallet.cli.context import Context, actor_option, pass_context
from wallet.errors import InputError, NotFoundError, StateConflictError
from wallet.services import accounts
from wallet.store.models import StaffUserRow

password_stdin_option = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of a prompt.",
)


def read_password(*, from_stdin: bool) -> str:
    """The new password, from stdin or a confirmed hidden prompt; checked before hashing."""
    password: str
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
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
            now=obj.now(),
        )
    click.echo(f"added user {row.username} (role {row.role})")


@users.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def list_users(obj: Context, as_json: bool) -> None:
    """Show every account with its role and state."""
    with obj.transaction(write=False) as session:
        rows = accounts.list_users(session)
    if as_json:
        found = [
            {
                "username": r.username,
                "role": r.role,
                "disabled": r.disabled,
                "created_at": r.created_at.isoformat(),
                "last_login_at": r.last_login_at.isoformat() if r.last_login_at else None,
            }
            for r in rows
        ]
        click.echo(json.dumps(found, indent=2))
        return
    if not rows:
        click.echo("no users yet: add one with `wallet users add NAME --role admin`")
        return
    click.echo(f"{'USERNAME':24} {'ROLE':8} {'STATE':8} {'CREATED':16} LAST LOGIN")
    for r in rows:
        last = f"{r.last_login_at:%Y-%m-%d %H:%M}" if r.last_login_at else "-"
        state = "disabled" if r.disabled else "active"
        click.echo(f"{r.username:24} {r.role:8} {state:8} {r.created_at:%Y-%m-%d %H:%M} {last}")


def _refuse_last_admin(session: Session, row: StaffUserRow) -> None:
    if row.role != "admin" or row.disabled:
        return
    admins = [u for u in accounts.list_users(session) if u.role == "admin" and not u.disabled]
    if len(admins) == 1:
        raise StateConflictError(
            f"{row.username} is the last active admin; add another admin first "
            "(`wallet users add NAME --role admin`)"
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
        _refuse_last_admin(session, row)
        accounts.disable_user(session, username=username, actor=obj.actor, now=obj.now())
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
        _refuse_last_admin(session, row)
        accounts.set_role(session, username=username, role=role, actor=obj.actor, now=obj.now())
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
            session, username=username, password=password, actor=obj.actor, now=obj.now()
        )
    click.echo(f"changed the password of {username}")
