"""``wallet setup``: everything ``scripts/serve`` does before gunicorn starts.

Safe to run on every start: it migrates the database, creates signing keys and
(in dev mode) the secret key only where they are missing, and creates the
first admin login and API token only while there are none. Their secrets are
printed once, to this terminal only: never logged, never stored in clear.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import click

from wallet.cli.context import Context, actor_option, pass_context
from wallet.cli.db import upgrade_database
from wallet.errors import ConfigError, StateConflictError
from wallet.files import write_atomically
from wallet.keys import KeyRole
from wallet.services import accounts, audit, credentials, doctor
from wallet.services.demo import ensure_keys

FIRST_ADMIN = "admin"
FIRST_TOKEN_NAME = "admin"  # noqa: S105 - the label, not the secret


def check_production_settings(obj: Context) -> None:
    """Refuse to start without the secrets production needs (dev mode makes its own)."""
    settings = obj.settings
    if settings.dev_mode:
        return
    if not settings.secret_key:
        raise ConfigError(
            "set WALLET_SECRET_KEY to a long random value "
            "(python3 -c 'import secrets; print(secrets.token_hex(32))'), "
            "or WALLET_DEV_MODE=1 for development"
        )
    if settings.key_passphrase is None:
        raise ConfigError(
            "set WALLET_KEY_PASSPHRASE (it encrypts the signing keys), "
            "or WALLET_DEV_MODE=1 for development"
        )


def ensure_signing_keys(obj: Context, *, now: datetime) -> None:
    """A trust-root key and a pass key for every pass type, where missing; each is audited."""
    before = {k.kid for k in obj.keystore.public_keys()}
    ensure_keys(obj.keystore, obj.pass_types, now=now)
    created = sorted(
        (k for k in obj.keystore.public_keys() if k.kid not in before),
        key=lambda k: k.info.role is not KeyRole.ROOT,  # the root first
    )
    if not created:
        click.echo(f"signing keys: present in {obj.settings.signing_keys_dir}")
        return
    with obj.transaction(write=True) as session:
        for key in created:
            audit.record(
                session,
                key=obj.services.audit_key,
                actor=obj.actor,
                action="key.generate",
                target=f"key:{key.kid}",
                details={
                    "role": key.info.role.value,
                    "alg": key.info.alg,
                    "pass_types": sorted(key.info.pass_types),
                },
                now=now,
            )
    for key in created:
        if key.info.role is KeyRole.ROOT:
            click.echo(
                f"created trust-root key {key.kid} ({key.info.alg}); staff devices pin its "
                "public key (GET /verifier/root-key.pem)"
            )
        else:
            types = ", ".join(sorted(key.info.pass_types))
            click.echo(f"created pass signing key {key.kid} ({key.info.alg}) for {types}")


def ensure_secret_key(obj: Context) -> None:
    """In dev mode without WALLET_SECRET_KEY: one key in the instance folder for all workers."""
    settings = obj.settings
    if settings.secret_key or not settings.dev_mode:
        return
    path = settings.instance_dir / "secret_key"
    if path.exists():
        return
    # Created here, before the workers start, so that they cannot race to make two.
    write_atomically(path, secrets.token_hex(32).encode("ascii"), mode=0o600)
    click.echo(f"created a development secret key in {path}")


def ensure_first_admin(obj: Context, *, now: datetime) -> None:
    """The first admin login and API token, only while there are no users / no tokens."""
    password = secrets.token_urlsafe(18)
    try:
        with obj.transaction(write=True) as session:
            made_user = not accounts.list_users(session)
            if made_user:
                accounts.add_user(
                    session,
                    username=FIRST_ADMIN,
                    password=password,
                    role="admin",
                    actor=obj.actor,
                    audit_key=obj.services.audit_key,
                    now=now,
                )
            token = None
            if not accounts.list_api_tokens(session):
                token = accounts.create_api_token(
                    session,
                    name=FIRST_TOKEN_NAME,
                    role="admin",
                    actor=obj.actor,
                    audit_key=obj.services.audit_key,
                    now=now,
                )
    except StateConflictError:  # another `wallet setup` made them a moment ago
        made_user, token = False, None
    if not made_user and token is None:
        click.echo("staff users and API tokens exist already: no first admin created")
        return
    click.echo("")
    click.echo("=" * 72)
    if made_user:
        click.echo("First admin login for the staff console (shown only now, write it down):")
        click.echo(f"    username: {FIRST_ADMIN}")
        click.echo(f"    password: {password}")
        click.echo(f"    change it with `wallet users passwd {FIRST_ADMIN}`")
    if token is not None:
        click.echo("Admin API token for /api/v1 (shown only now, only its hash is kept):")
        click.echo(f"    {token.secret}")
    click.echo("=" * 72)
    click.echo("")


def report_wallet_setup(obj: Context, *, now: datetime) -> None:
    """Name wallet set-up problems at every start; serving goes on (QR codes still work)."""
    if not (obj.settings.apple_configured or obj.settings.google_enabled):
        return  # development defaults: nothing an operator configured can be wrong
    problems = [
        f for f in doctor.check_configuration(obj.services, now=now) if f.severity == "error"
    ]
    for finding in problems:
        click.echo(f"warning: wallet set-up: [{finding.code}] {finding.message}", err=True)
    if problems:
        click.echo("warning: run `wallet doctor` after fixing the set-up", err=True)


@click.command()
@actor_option
@pass_context
def setup(obj: Context) -> None:
    """Prepare this instance to serve: migrate, create missing keys, the first admin."""
    check_production_settings(obj)
    now = obj.now()
    obj.pass_types  # noqa: B018 - fail now, not in the workers, if the types do not load
    result = upgrade_database(obj)
    state = f"upgraded from {result.before or 'empty'}" if result.changed else "newest"
    click.echo(f"database: {obj.database_label()} at revision {result.after} ({state})")
    with obj.transaction(write=True, signs=True):
        pass  # records this instance's issuer and public URL, or refuses other ones
    click.echo(f"issuer: {obj.settings.issuer}")
    ensure_signing_keys(obj, now=now)
    ensure_secret_key(obj)
    chain = credentials.ensure_dev_chain(obj.settings, now=now)
    if chain is not None:
        click.echo(
            f"Apple Wallet: development certificates in {chain}; such passes do not install "
            "on a real iPhone (the README says how to use Apple's certificates)"
        )
    report_wallet_setup(obj, now=now)
    ensure_first_admin(obj, now=now)
