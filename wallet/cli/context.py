"""What every ``wallet`` command shares: settings, keys, pass types, error handling."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import click

from wallet.config import Settings
from wallet.errors import WalletError
from wallet.keystore import KeyStore
from wallet.passtypes import PassType, load_pass_types


@dataclass
class Context:
    """Built once per command from the environment; commands receive it."""

    settings: Settings

    @cached_property
    def keystore(self) -> KeyStore:
        s = self.settings
        return KeyStore(s.signing_keys_dir, passphrase=s.key_passphrase, dev_mode=s.dev_mode)

    @cached_property
    def pass_types(self) -> dict[str, PassType]:
        return load_pass_types(self.settings.pass_types_dir)


class WalletGroup(click.Group):
    """Turns every WalletError into a one-line message and a non-zero exit."""

    error_exit_code = 1

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WalletError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(self.error_exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
