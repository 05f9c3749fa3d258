"""The demo: issue the two reference passes and check them the way a staff device does."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from wallet.config import Settings
from wallet.errors import PassTypeError
from wallet.formats.qr import qr_info, render_png, render_svg
from wallet.formats.qrimage import read_qr_image
from wallet.keys import KeyRole, KeyState, SigningKey
from wallet.keystore import KeyStore
from wallet.passtypes import PassType
from wallet.qrtext import encode_qr_text
from wallet.services.publishing import export_bundle, sign_status_lists, status_list_uri
from wallet.status import MIN_LIST_SIZE, StatusList, allocate_index
from wallet.tokens import (
    new_serial,
    sign_pass_token,
)
from wallet.verifier import VerificationResult, Verifier

# The reference passes of DESIGN.md.
REFERENCE_HOLDERS: Mapping[str, Mapping[str, str]] = {
    "library": {"card_number": "100200300400", "name": "Erika Mustermann"},
    "parking": {"plate": "D-AB 1234", "zone": "12"},
}


@dataclass(frozen=True)
class DemoPass:
    pass_type: str
    serial: str
    qr_version: int
    result: VerificationResult


def ensure_keys(store: KeyStore, pass_types: Mapping[str, PassType], *, now: datetime) -> None:
    """Create a trust-root key and a pass key for each type that has none."""
    existing = store.public_keys()
    active = [k for k in existing if k.info.state is KeyState.ACTIVE and k.info.covers(now)]
    if not any(k.info.role is KeyRole.ROOT for k in active):
        store.generate(alg="ES256", role=KeyRole.ROOT, pass_types=frozenset(), now=now)
    covered = {t for k in active if k.info.role is KeyRole.PASS for t in k.info.pass_types}
    missing = frozenset(pass_types.keys() - covered)
    if missing:
        store.generate(alg="ES256", role=KeyRole.PASS, pass_types=missing, now=now)


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o644)


def run_demo(
    *,
    settings: Settings,
    store: KeyStore,
    pass_types: Mapping[str, PassType],
    out: Path,
    now: datetime,
) -> list[DemoPass]:
    """Issue each reference pass, publish a bundle, then verify the PNGs offline."""
    missing = REFERENCE_HOLDERS.keys() - pass_types.keys()
    if missing:
        raise PassTypeError(f"the reference pass types are not defined: {', '.join(missing)}")
    ensure_keys(store, pass_types, now=now)
    out.mkdir(parents=True, exist_ok=True)

    lists: dict[str, tuple[StatusList, SigningKey]] = {}
    issued: list[tuple[str, str, str]] = []
    for type_id, holder_raw in REFERENCE_HOLDERS.items():
        pass_type = pass_types[type_id]
        holder = pass_type.clean_holder(holder_raw)
        key = store.current_signing_key(type_id, now=now)
        uri = status_list_uri(settings.public_url, f"{type_id}-1")
        status_list = StatusList(MIN_LIST_SIZE, bits=pass_type.status_bits)
        lists[uri] = (status_list, key)
        serial = new_serial()
        token = sign_pass_token(
            key=key,
            issuer=settings.issuer,
            serial=serial,
            pass_type=type_id,
            holder=pass_type.token_fields(holder),
            issued_at=now,
            expires_at=pass_type.valid_until(now),
            status_idx=allocate_index(set(), len(status_list)),
            status_uri=uri,
        )
        qr_text = encode_qr_text(token)
        _write(out / f"{type_id}.jws", token.encode("ascii") + b"\n")
        _write(out / f"{type_id}.txt", qr_text.encode("ascii") + b"\n")
        _write(out / f"{type_id}.png", render_png(qr_text))
        title = f"{pass_type.label.de} / {pass_type.label.en}"
        _write(out / f"{type_id}.svg", render_svg(qr_text, title=title).encode("utf-8"))
        issued.append((type_id, serial, qr_text))

    status_tokens = sign_status_lists(
        lists,
        issuer=settings.issuer,
        now=now,
        lifetime=timedelta(seconds=settings.status_list_lifetime),
        ttl=timedelta(seconds=settings.status_list_ttl),
    )
    root = store.root_key(now=now)
    bundle = export_bundle(
        issuer=settings.issuer,
        version=int(now.timestamp()),
        keys=store.public_keys(),
        status_tokens=status_tokens,
        pass_types=pass_types,
        root=root,
        now=now,
        lifetime=timedelta(seconds=settings.bundle_lifetime),
    )
    _write(out / "bundle.jwt", bundle.encode("ascii") + b"\n")
    _write(out / "root-key.pem", store.root_public_key(now=now).pem())

    verifier = Verifier.load(out / "bundle.jwt", root_key=out / "root-key.pem", now=now)
    results = []
    for type_id, serial, qr_text in issued:
        scanned = read_qr_image((out / f"{type_id}.png").read_bytes())
        results.append(
            DemoPass(
                pass_type=type_id,
                serial=serial,
                qr_version=qr_info(qr_text).version,
                result=verifier.check(scanned, now=now),
            )
        )
    return results
