"""``wallet devices``: staff phones paired with the scanner (pairing is done in the console)."""

from __future__ import annotations

import click

from wallet.cli.context import Context, actor_option, pass_context
from wallet.cli.listing import Column, json_option, print_rows, when
from wallet.services import devices as device_service


@click.group()
def devices() -> None:
    """Scanner devices: list them, revoke a lost or retired phone."""


@devices.command(name="list")
@json_option
@pass_context
def list_devices(obj: Context, as_json: bool) -> None:
    """Show every device with its role, state and last sync."""
    moment = obj.now()
    with obj.transaction(write=False) as session:
        rows = device_service.list_devices(session)
    print_rows(
        rows,
        as_json=as_json,
        to_json=lambda d: d.to_json(),
        columns=[
            Column("DEVICE", 17, lambda d: d.device_id),
            Column("NAME", 24, lambda d: d.name),
            Column("ROLE", 8, lambda d: d.role.value),
            Column("STATE", 8, lambda d: "expired" if d.pairing_expired(moment) else d.state.value),
            Column("PAIRED BY", 16, lambda d: d.created_by),
            Column("LAST SYNC", 0, lambda d: when(d.last_sync_at)),
        ],
        empty="no devices yet: staff pair their phone in the console under Geräte / Devices",
    )


@devices.command()
@click.argument("device_id")
@actor_option
@pass_context
def revoke(obj: Context, device_id: str) -> None:
    """Revoke a device (a lost phone): its next sync is refused."""
    with obj.transaction(write=True) as session:
        device = device_service.revoke_device(
            session,
            device_id=device_id,
            actor=obj.actor,
            audit_key=obj.services.audit_key,
            now=obj.now(),
        )
    click.echo(f"revoked device {device.device_id}; it can no longer sync")
