"""``wallet demo``: the main job until the service exists."""

from __future__ import annotations

from pathlib import Path

import click

from wallet.cli.context import Context
from wallet.services.demo import run_demo

pass_context = click.make_pass_decorator(Context)


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the bundle, root key and the passes' QR codes.",
)
@pass_context
def demo(obj: Context, out: Path) -> None:
    """Issue the two reference passes, write their QR codes and a signed bundle, verify them."""
    passes = run_demo(
        settings=obj.settings,
        store=obj.keystore,
        pass_types=obj.pass_types,
        out=out,
        now=obj.now(),
    )
    click.echo(f"wrote bundle.jwt, root-key.pem and the passes' QR codes to {out}/")
    failed = False
    for p in passes:
        r = p.result
        mark = "✔" if r.valid else "✘"
        click.echo(
            f"{mark} {p.pass_type:8} serial {p.serial}  QR version {p.qr_version:2}  "
            f"{r.state}: {r.message_en} / {r.message_de}"
        )
        failed = failed or not r.valid
    click.echo(
        f"check them yourself: wallet-verify --bundle {out}/bundle.jwt "
        f"--root-key {out}/root-key.pem check --image {out}/library.png"
    )
    if failed:
        raise click.exceptions.Exit(1)
