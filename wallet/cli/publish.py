"""``wallet status publish`` and ``wallet bundle export``: what verifiers download.

The web service signs both on demand; these commands are for publishing to a
static host or CDN, or for handing a bundle to a device that is never online.
"""

from __future__ import annotations

from pathlib import Path

import click

from wallet.cli.context import Context, actor_option, pass_context
from wallet.errors import WalletError
from wallet.files import write_atomically
from wallet.services import audit, publishing


@click.group()
def status() -> None:
    """Status lists: one bit (or two) per pass, signed."""


@status.command()
@click.option("--force", is_flag=True, help="Re-sign every list, changed or not.")
@actor_option
@pass_context
def publish(obj: Context, force: bool) -> None:
    """Re-sign the status lists that changed (or age); prints name, version, entries changed."""
    now = obj.now()
    with obj.transaction(write=True, signs=True) as session:
        names = publishing.list_names(session)
        results = []
        for name in names:
            before = publishing.published_list(session, name)
            # A new list starts at version 1 with nothing published (0).
            changed = before.version - max(before.published_version, 1)
            signed_before = before.published_at
            row = publishing.publish_status_list(session, obj.services, name, now=now, force=force)
            resigned = row.published_at != signed_before
            results.append((row.name, row.published_version, changed, resigned))
        signed = {name: version for name, version, _, resigned in results if resigned}
        if signed:
            audit.record(
                session,
                key=obj.services.audit_key,
                actor=obj.actor,
                action="status.publish",
                details={"lists": signed, "force": force},
                now=now,
            )
    if not results:
        click.echo("no status lists yet: each pass type gets one with its first pass")
        return
    click.echo(f"{'LIST':16} {'VERSION':>8} {'CHANGED':>8}  RESULT")
    for name, version, changed, resigned in results:
        result = "re-signed" if resigned else "current, unchanged"
        click.echo(f"{name:16} {version:>8} {changed:>8}  {result}")


def _write(path: Path, data: bytes) -> None:
    try:
        write_atomically(path, data, mode=0o644)
    except OSError as exc:
        raise WalletError(f"cannot write {path}: {exc.strerror}; nothing was published") from exc


@click.group()
def bundle() -> None:
    """The signed trust bundle that staff devices sync."""


@bundle.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    metavar="FILE|-",
    help="Where to write the bundle (- for standard output).",
)
@click.option(
    "--root-key",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the trust-root public key (PEM) that devices pin.",
)
@click.option("--force", is_flag=True, help="Sign a new version even if nothing changed.")
@actor_option
@pass_context
def export(obj: Context, out: Path, root_key: Path | None, force: bool) -> None:
    """Write the signed bundle (status lists refreshed first); prints its version."""
    now = obj.now()
    to_stdout = str(out) == "-"
    with obj.transaction(write=True, signs=True) as session:
        row = publishing.publish_bundle(session, obj.services, now=now, force=force)
        token, version, expires = row.token, row.version, row.expires_at
        audit.record(
            session,
            key=obj.services.audit_key,
            actor=obj.actor,
            action="bundle.export",
            details={"version": version, "out": str(out)},
            now=now,
        )
        # Written before the commit: a file that cannot be written uses up no version.
        if not to_stdout:
            _write(out, token.encode("ascii") + b"\n")
        if root_key is not None:
            pem = obj.keystore.root_public_key(now=now).pem()
            _write(root_key, pem)
    if to_stdout:
        click.echo(token)
    where = "standard output" if to_stdout else str(out)
    click.echo(
        f"wrote bundle version {version} to {where} (valid until {expires:%Y-%m-%d %H:%M} UTC)",
        err=to_stdout,
    )
    if root_key is not None:
        click.echo(f"wrote the trust-root public key to {root_key}", err=to_stdout)
