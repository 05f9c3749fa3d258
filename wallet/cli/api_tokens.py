"""``wallet api-tokens``: bearer tokens for the REST API, shown once and stored hashed."""

from __future__ import annotations

import click

from wallet.cli.context import Context, actor_option, pass_context
from wallet.cli.listing import Column, json_option, print_rows, when
from wallet.services import accounts


@click.group(name="api-tokens")
def api_tokens() -> None:
    """Bearer tokens for /api/v1 with a role: admin, issuer or verifier."""


@api_tokens.command()
@click.option("--role", type=click.Choice(accounts.ROLES), required=True, help="What it may do.")
@click.option("--name", required=True, help="A label to list and revoke it by (unique).")
@actor_option
@pass_context
def create(obj: Context, role: str, name: str) -> None:
    """Create a token and print its secret, once."""
    with obj.transaction(write=True) as session:
        token = accounts.create_api_token(
            session,
            name=name,
            role=role,
            actor=obj.actor,
            audit_key=obj.services.audit_key,
            now=obj.now(),
        )
    click.echo(f"created API token {token.token.name} (role {token.token.role})", err=True)
    click.echo(token.secret)
    click.echo(
        "Store it now: it cannot be shown again (only its hash is kept). "
        f"If it is lost, revoke it with `wallet api-tokens revoke {token.token.name}`.",
        err=True,
    )


@api_tokens.command(name="list")
@json_option
@pass_context
def list_tokens(obj: Context, as_json: bool) -> None:
    """Show every token: name, role, prefix, created, revoked (never the secret)."""
    with obj.transaction(write=False) as session:
        rows = accounts.list_api_tokens(session)
    print_rows(
        rows,
        as_json=as_json,
        to_json=lambda r: {
            "name": r.name,
            "role": r.role,
            "prefix": r.prefix,
            "created_at": r.created_at.isoformat(),
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
        },
        columns=[
            Column("NAME", 24, lambda r: r.name),
            Column("ROLE", 8, lambda r: r.role),
            Column("PREFIX", 12, lambda r: r.prefix),
            Column("CREATED", 16, lambda r: when(r.created_at)),
            Column("REVOKED", 0, lambda r: when(r.revoked_at)),
        ],
        empty="no API tokens yet: create one with `wallet api-tokens create`",
    )


@api_tokens.command()
@click.argument("name")
@actor_option
@pass_context
def revoke(obj: Context, name: str) -> None:
    """Stop accepting a token at once."""
    now = obj.now()
    with obj.transaction(write=True) as session:
        row = accounts.revoke_api_token(
            session, name=name, actor=obj.actor, audit_key=obj.services.audit_key, now=now
        )
        revoked_at = row.revoked_at
    if revoked_at is not None and revoked_at != now:
        click.echo(f"API token {name} was already revoked on {revoked_at:%Y-%m-%d %H:%M} UTC")
    else:
        click.echo(f"revoked API token {name}; requests with it are refused from now on")
