"""The admin CLI ``wallet``: the only place besides the web layer that knows a terminal."""

from __future__ import annotations

import os
from collections.abc import Sequence

import click

from wallet.cli.context import Context, LazyGroup, check_actor, configure_logging, system_clock
from wallet.config import Settings

# name -> "module:command"; each module is imported only when its command runs.
COMMANDS = {
    "api-tokens": "wallet.cli.api_tokens:api_tokens",
    "audit": "wallet.cli.audit:audit",
    "backup": "wallet.cli.backup:backup",
    "bundle": "wallet.cli.publish:bundle",
    "db": "wallet.cli.db:db",
    "demo": "wallet.cli.demo:demo",
    "dev-certs": "wallet.cli.dev_certs:dev_certs",
    "devices": "wallet.cli.devices:devices",
    "keys": "wallet.cli.keys:keys",
    "outbox": "wallet.cli.outbox:outbox",
    "passes": "wallet.cli.passes:passes",
    "restore": "wallet.cli.backup:restore",
    "setup": "wallet.cli.setup:setup",
    "status": "wallet.cli.publish:status",
    "users": "wallet.cli.users:users",
    "worker": "wallet.cli.worker:worker",
    "doctor": "wallet.cli.doctor:doctor",
    "import": "wallet.cli.imports:import_command",
    "holders": "wallet.cli.holders:holders",
    "letters": "wallet.cli.letters:letters_command",
}


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.option(
    "--actor",
    envvar="WALLET_ACTOR",
    metavar="NAME",
    help="Who the audit log names for this command (default: cli:<OS user>).",
)
@click.pass_context
def cli(ctx: click.Context, actor: str | None) -> None:
    """Issue, revoke and check the city's signed digital passes."""
    configure_logging()
    # A caller that embeds the CLI (the tests) may hand in its clock as ``obj``,
    # so every command reads the same time as the rest of the test.
    clock = ctx.obj if callable(ctx.obj) else system_clock
    obj = Context(settings=Settings.from_env(os.environ), clock=clock)
    if actor:
        obj.actor_name = check_actor(actor)
    ctx.obj = obj
    ctx.call_on_close(obj.close)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=argv, prog_name="wallet")
