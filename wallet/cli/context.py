"""What every ``wallet`` command shares: settings, keys, database, actor, error handling.

The database and the use cases' collaborators are built lazily: ``wallet keys``
and ``wallet-verify`` (which shares :class:`WalletGroup`) never load SQLAlchemy.
"""

from __future__ import annotations

import getpass
import importlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import click

from wallet.config import Settings
from wallet.errors import WalletError
from wallet.keystore import KeyStore
from wallet.passtypes import PassType, load_pass_types

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from wallet.services.context import Services
    from wallet.store.db import Database

_ACTOR_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,80}")


class DatabaseError(WalletError):
    """The database cannot be reached or has no schema; the message says what to do."""

    code = "database_error"


Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class ActorError(WalletError):
    code = "actor_invalid"


def describe_db_error(exc: Exception) -> str:
    """The first line of the driver's message: enough to act on, no SQL dump."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry for this uid (some containers)
        return f"uid{os.getuid()}"


def check_actor(name: str) -> str:
    if not _ACTOR_RE.fullmatch(name):
        raise ActorError(
            f"the actor {name!r} is not usable: give 1-80 characters without spaces "
            "(--actor NAME or WALLET_ACTOR)"
        )
    return name


@dataclass
class Context:
    """Built once per command from the environment; commands receive it."""

    settings: Settings
    actor_name: str | None = None  # --actor / WALLET_ACTOR; default cli:<OS user>
    clock: Clock = system_clock  # the one wall-clock read of every command; tests pass theirs
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @cached_property
    def keystore(self) -> KeyStore:
        s = self.settings
        return KeyStore(s.signing_keys_dir, passphrase=s.key_passphrase, dev_mode=s.dev_mode)

    @cached_property
    def pass_types(self) -> dict[str, PassType]:
        return load_pass_types(self.settings.pass_types_dir)

    @property
    def actor(self) -> str:
        """Who the audit log names for this command's actions."""
        return check_actor(self.actor_name or f"cli:{_os_user()}")

    @cached_property
    def db(self) -> Database:
        from wallet.store.db import Database

        database = Database(self.settings.database, pool_size=1)
        self._closers.append(database.dispose)
        return database

    @cached_property
    def services(self) -> Services:
        from wallet.services.context import Services

        return Services(settings=self.settings, keys=self.keystore, pass_types=self.pass_types)

    def now(self) -> datetime:
        return self.clock()

    def database_label(self) -> str:
        """The database URL without its password, for messages."""
        from sqlalchemy.engine import make_url

        return make_url(self.db.url).render_as_string(hide_password=True)

    @contextmanager
    def transaction(self, *, write: bool, signs: bool = False) -> Iterator[Session]:
        """``db.transaction`` with database failures turned into a message saying what to do.

        ``signs``: the command signs passes or lists, so this shell's issuer and
        public URL must be the service's (checked, or recorded on first use).
        """
        from sqlalchemy.exc import DBAPIError

        try:
            with self.db.transaction(write=write) as session:
                if signs:
                    from wallet.services.instance import check_identity

                    check_identity(session, self.settings)
                yield session
        except DBAPIError as exc:
            raise self._database_error(exc) from exc

    def _database_error(self, exc: Exception) -> DatabaseError:
        from sqlalchemy.exc import DBAPIError

        where = self.database_label()
        try:
            revision = self.db.current_revision()
        except DBAPIError:
            revision = None
        detail = describe_db_error(exc)
        if revision is None:
            return DatabaseError(
                f"the database {where} is not reachable or has no tables ({detail}); "
                "check WALLET_DATABASE_URL and run `wallet db upgrade`"
            )
        return DatabaseError(f"database error on {where}: {detail}")

    def close(self) -> None:
        for closer in self._closers:
            closer()
        self._closers.clear()


pass_context = click.make_pass_decorator(Context)


def _set_actor(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    obj = ctx.find_object(Context)
    if value is not None and obj is not None:
        obj.actor_name = check_actor(value)


def actor_option(function: Any) -> Any:
    """``--actor NAME`` on a command: overrides the group's --actor and WALLET_ACTOR."""
    return click.option(
        "--actor",
        metavar="NAME",
        expose_value=False,
        callback=_set_actor,
        help="Who the audit log names (default: WALLET_ACTOR or cli:<OS user>).",
    )(function)


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


class LazyGroup(WalletGroup):
    """Imports a subcommand's module only when it runs (or when help lists it).

    ``wallet keys`` then works without the server packages, and importing
    ``wallet.cli`` (as ``wallet-verify`` does) loads neither SQLAlchemy nor passlib.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module_name, attribute = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
