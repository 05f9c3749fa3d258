"""``wallet dev-certs``: a local certificate chain shaped like Apple's, for development and CI.

Root → "Worldwide Developer Relations"-like intermediate → "Pass Type ID: …"
certificate with the team id as OU: everything a pass needs to be built,
signed and checked (``openssl cms -verify``, ``wallet doctor``) without an
Apple account. Such passes do not install on a real iPhone. ``wallet setup``
makes one in the instance folder in development mode; this command makes one
anywhere, e.g. for another system's tests.
"""

from __future__ import annotations

from pathlib import Path

import click

from wallet.cli.context import Context, pass_context
from wallet.errors import ConfigError
from wallet.formats.apple_dev_ca import create_dev_chain


@click.command(name="dev-certs")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for root.pem, wwdr.pem, pass.pem and pass.key.pem (created if missing).",
)
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
@pass_context
def dev_certs(obj: Context, out: Path, days: int) -> None:
    """Create a development chain for WALLET_APPLE_PASS_TYPE_ID and WALLET_APPLE_TEAM_ID."""
    settings = obj.settings
    try:
        out.mkdir(parents=True, exist_ok=True)
        chain = create_dev_chain(
            out,
            team_id=settings.apple_team_id,
            pass_type_id=settings.apple_pass_type_id,
            now=obj.now(),
            valid_days=days,
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot write the development chain to {out}: {exc.strerror or exc}; "
            "choose a folder you may write to"
        ) from exc
    click.echo(
        f"development chain for {settings.apple_pass_type_id} (team {settings.apple_team_id}):"
    )
    for label, path in (
        ("trust root", chain.root),
        ("WWDR-like intermediate", chain.wwdr),
        ("Pass Type ID certificate", chain.certificate),
        ("its private key (unencrypted, mode 0600)", chain.key),
    ):
        click.echo(f"  {label + ':':42} {path}")
    click.echo(
        "Passes signed with it do not install on a real iPhone; the README says how to use "
        "Apple's certificates."
    )
