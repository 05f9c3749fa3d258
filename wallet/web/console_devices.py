"""Console pages for staff devices: pair a phone with the scanner, list devices, revoke one.

Any member of staff may pair their own phone (verifiers are the ones on the
street) and revoke it; admins see and revoke every device. The pairing code
travels in the URL's fragment (``/scan/#pair=…``), which browsers never send to
a server, so it does not land in any access log.
"""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from wallet.domain import MAX_DEVICE_NAME_LENGTH, MAX_DEVICE_ZONES, Device, Role
from wallet.errors import InputError
from wallet.services import devices as device_service
from wallet.services import plate_checks
from wallet.web.console import Staff, blueprint, link_qr
from wallet.web.i18n import _
from wallet.web.webcontext import context, now

_RANK = (Role.VERIFIER, Role.ISSUER, Role.ADMIN)


def _visible(staff: Staff, device: Device) -> bool:
    return staff.role == Role.ADMIN or device.created_by == staff.actor


def _roles_for(staff: Staff) -> list[str]:
    """Roles a member of staff may give a device: their own or a lower one."""
    own = Role(staff.role)
    return [role.value for role in _RANK[: _RANK.index(own) + 1]]


def _list_page(
    *, error: str = "", error_field: str = "", name: str = "", zones: str = "", status: int = 200
) -> tuple[str, int]:
    staff: Staff = g.staff
    ctx = context()
    with ctx.db.transaction(write=False) as session:
        shown = [d for d in device_service.list_devices(session) if _visible(staff, d)]
        lookups = plate_checks.lookups_on(session, now=now())
    page = render_template(
        "console/devices.html",
        devices=shown,
        lookups=lookups,
        alert_lookups=plate_checks.ALERT_PER_DAY,
        busy=[d.name for d in shown if lookups.get(d.device_id, 0) >= plate_checks.ALERT_PER_DAY],
        roles=_roles_for(staff),
        error=error,
        error_field=error_field,
        name=name,
        zones=zones,
        max_name=MAX_DEVICE_NAME_LENGTH,
        moment=now(),
        root_fingerprint=ctx.services.keys.root_public_key(now=now()).fingerprint(),
    )
    return page, status


@blueprint.get("/devices")
def devices() -> ResponseReturnValue:
    return _list_page()


@blueprint.post("/devices")
def pair_device() -> ResponseReturnValue:
    """Start pairing: show the one-time pairing QR for the phone's scanner app."""
    staff: Staff = g.staff
    ctx = context()
    name = request.form.get("name", "")
    role = request.form.get("role", Role.VERIFIER.value)
    zones = request.form.get("zones", "")
    try:
        with ctx.db.transaction(write=True) as session:
            pairing = device_service.start_pairing(
                session,
                name=name,
                role=role,
                actor=staff.actor,
                actor_role=Role(staff.role),
                audit_key=ctx.services.audit_key,
                now=now(),
                zones=zones,
            )
    except InputError as exc:
        messages = {
            "name": _("Please give the device a name of at most %(count)d characters, on one line.",
                      count=MAX_DEVICE_NAME_LENGTH),
            "zones": _("Please list at most %(count)d zones, separated by commas, for example "
                       "12, 13.", count=MAX_DEVICE_ZONES),
        }  # fmt: skip
        above = _("Please choose a role that is not above your own.")
        message = messages.get(exc.field or "", above)
        return _list_page(
            error=message,
            error_field=exc.field if exc.field in messages else "role",
            name=name[:MAX_DEVICE_NAME_LENGTH],
            zones=zones[:200],
            status=422,
        )
    pair_url = f"{ctx.settings.public_url}/scan/#pair={pairing.code}"
    page = render_template(
        "console/device_pairing.html",
        device=pairing.device,
        pair_url=pair_url,
        pair_qr=link_qr(pair_url, title=_("Pairing code for the scanner app")),
    )
    return page, 201


@blueprint.post("/devices/<device_id>/revoke")
def revoke_device(device_id: str) -> ResponseReturnValue:
    staff: Staff = g.staff
    ctx = context()
    with ctx.db.transaction(write=True) as session:
        device = device_service.get_device(session, device_id)
        if not _visible(staff, device):
            return _list_page(error=_("Only administrators can revoke other people's devices."),
                              status=403)  # fmt: skip
        if device.revoked_at is None:
            device_service.revoke_device(
                session,
                device_id=device_id,
                actor=staff.actor,
                audit_key=ctx.services.audit_key,
                now=now(),
            )
    flash(_("The device %(name)s is revoked; it can no longer sync.", name=device.name), "success")
    return redirect(url_for("console.devices"))
