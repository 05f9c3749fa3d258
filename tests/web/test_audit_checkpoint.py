"""``/verifier/audit-checkpoint``: the newest signed checkpoint, published outside the database."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from flask.testing import FlaskClient

from tests.factories import NOW
from wallet.auditkey import AuditPublicKey
from wallet.services import audit
from wallet.services.context import Services
from wallet.store.db import Database


def test_the_published_checkpoint_verifies_with_the_published_key(
    client: FlaskClient, db: Database, services: Services
) -> None:
    empty = client.get("/verifier/audit-checkpoint")
    assert empty.status_code == 200 and empty.get_json()["checkpoint"] is None
    with db.transaction(write=True) as session:
        audit.record(session, key=services.audit_key, actor="admin:test", action="t", now=NOW)
    audit.seal_all(
        lambda: db.transaction(write=True), key=services.audit_key,
        checkpoint_file=services.audit_checkpoint_file, clock=lambda: NOW,
    )  # fmt: skip
    body = client.get("/verifier/audit-checkpoint").get_json()
    public = load_pem_public_key(body["public_key"].encode("ascii"))
    assert isinstance(public, ed25519.Ed25519PublicKey)
    published = AuditPublicKey(public)
    assert body["key"] == published.key_id == services.audit_key.public.key_id
    checkpoint = published.verify_checkpoint(body["checkpoint"])
    assert (checkpoint.seq, checkpoint.at) == (1, NOW)
    assert body["checkpoint"] == audit.read_checkpoint_file(services.audit_checkpoint_file)
