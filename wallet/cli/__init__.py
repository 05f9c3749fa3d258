"""The admin CLI ``wallet``: the only place besides the web layer that knows a terminal."""

from __future__ import annotations

import os
from collections.abc import Sequence

import click

from wallet.cli.context import Context, WalletGroup, configure_logging
from wallet.cli.demo import demo
from wallet.cli.keys import keys
from wallet.config import Settings


@click.group(cls=WalletGroup)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Issue, revoke and check the city's signed digital passes."""
    configure_logging()
    ctx.obj = Context(settings=Settings.from_env(os.environ))


cli.add_command(keys)
cli.add_command(demo)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=argv, prog_name="wallet")
