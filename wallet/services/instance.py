"""The instance's identity: the issuer and public URL every pass and list is signed for.

Every node and every admin shell must sign with the same values, or verifiers
refuse what they sign. The database (shared by all of them) keeps the values
the service first ran with; a command whose environment differs is refused
with a message naming what differs, instead of signing passes nobody accepts.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from wallet.config import Settings
from wallet.errors import ConfigError
from wallet.store.models import InstanceSettingRow

_ENVIRONMENT_NAMES = {"public_url": "WALLET_PUBLIC_URL", "issuer": "WALLET_ISSUER"}
_INSERT = {
    name: dialect.insert(InstanceSettingRow).on_conflict_do_nothing(index_elements=["name"])
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


class IdentityMismatchError(ConfigError):
    """This environment would sign for another issuer or address than the service's."""

    code = "instance_identity_mismatch"


def identity(settings: Settings) -> dict[str, str]:
    return {"public_url": settings.public_url, "issuer": settings.issuer}


def check_identity(session: Session, settings: Settings) -> None:
    """Record the identity if the database has none yet, else insist on the stored one.

    :raises IdentityMismatchError: naming each value that differs and its variable.
    """
    wanted = identity(settings)
    insert = _INSERT[session.get_bind().dialect.name]
    for name, value in wanted.items():
        session.execute(insert.values(name=name, value=value))
    rows = session.execute(
        select(InstanceSettingRow.name, InstanceSettingRow.value).where(
            InstanceSettingRow.name.in_(wanted)
        )
    )
    stored = {name: value for name, value in rows}
    differs = [
        f"{_ENVIRONMENT_NAMES[name]} is {value} here, but the service uses {stored[name]}"
        for name, value in wanted.items()
        if stored.get(name) != value
    ]
    if differs:
        raise IdentityMismatchError(
            "; ".join(differs)
            + ". Passes or lists signed here would fail every verifier: set the same values "
            "as the server's environment and run the command again."
        )
