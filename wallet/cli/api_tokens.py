"""``wallet api-tokens``: bearer tokens for the REST API, shown once and stored hashed."""

from __future__ import annotations

import json

import click

from wallet.cli.context import Context, actor_option, pass_context
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
    click.echo(f"created API token {token.row.name} (role {token.row.role})", err=True)
    click.echo(token.secret)
    click.echo(
        "Store it now: it cannot be shown again (only its hash is kept). "
        f"If it is lost, revoke it with `wallet api-tokens revoke {token.row.name}`.",
        err=True,
    )


@api_tokens.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def list_tokens(obj: Context, as_json: bool) -> None:
    """Show every token: name, role, prefix, created, revoked (never the secret)."""
    with obj.transaction(write=False) as session:
        rows = accounts.list_api_tokens(session)
    if as_json:
        found = [
            {
                "name": r.name,
                "role": r.role,
                "prefix": r.prefix,
                "created_at": r.created_at.isoformat(),
                "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
            }
            for r in rows
        ]
        click.echo(json.dumps(found, indent=2))
        return
    if not rows:
        click.echo("no API tokens yet: create one with `wallet api-tokens create`")
        return
    click.echo(f"{'NAME':24} {'ROLE':8} {'PREFIX':12} {'CREATED':16} REVOKED")
    for r in rows:
        revoked = f"{r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "-"
        click.echo(f"{r.name:24} {r.role:8} {r.prefix:12} {r.created_at:%Y-%m-%d %H:%M} {revoked}")


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
