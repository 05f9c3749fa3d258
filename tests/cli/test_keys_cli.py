"""``wallet keys``: the admin's key life cycle, with clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from wallet.cli import cli
from wallet.keys import SigningKey


def run(
    runner: CliRunner, env: dict[str, str], *args: str, input: str | None = None
) -> tuple[int, str]:
    result = runner.invoke(cli, list(args), env=env, input=input)
    return result.exit_code, result.output


def kids(runner: CliRunner, env: dict[str, str]) -> list[dict[str, object]]:
    code, out = run(runner, env, "keys", "list", "--json")
    assert code == 0, out
    return json.loads(out)


def test_generate_list_rotate_retire_revoke(runner: CliRunner, env: dict[str, str]) -> None:
    code, out = run(runner, env, "keys", "generate", "--root")
    assert code == 0 and "trust-root key" in out
    code, out = run(runner, env, "keys", "generate", "--pass-type", "library", "--alg", "EdDSA")
    assert code == 0 and "signing key for library" in out
    first = next(k for k in kids(runner, env) if k["role"] == "pass")
    assert first["alg"] == "EdDSA" and first["pass_types"] == ["library"]

    code, out = run(runner, env, "keys", "rotate")
    assert code == 0 and f"rotated {first['kid']}" in out
    states = {k["kid"]: k["state"] for k in kids(runner, env) if k["role"] == "pass"}
    assert states[first["kid"]] == "retired"
    (new_kid,) = [kid for kid, state in states.items() if state == "active"]

    code, out = run(runner, env, "keys", "jwks")
    published = {k["kid"] for k in json.loads(out)["keys"]}
    assert code == 0 and published == {first["kid"], new_kid}

    code, out = run(runner, env, "keys", "revoke", str(first["kid"]), input="y\n")
    assert code == 0 and "revoked" in out
    code, out = run(runner, env, "keys", "jwks")
    assert {k["kid"] for k in json.loads(out)["keys"]} == {new_kid}

    code, out = run(runner, env, "keys", "list")
    assert code == 0 and "revoked" in out and "retired" not in out


def test_revoke_asks_first(runner: CliRunner, env: dict[str, str]) -> None:
    run(runner, env, "keys", "generate")
    (key,) = kids(runner, env)
    code, _ = run(runner, env, "keys", "revoke", str(key["kid"]), input="n\n")
    assert code != 0
    assert kids(runner, env)[0]["state"] == "active"


def test_failures_exit_non_zero_with_a_message(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    code, out = run(runner, env, "keys", "generate", "--pass-type", "pool")
    assert code == 1 and "unknown pass type pool" in out
    code, out = run(runner, env, "keys", "retire", "nope1234")
    assert code == 1 and "no key nope1234" in out
    code, out = run(runner, env, "keys", "rotate")
    assert code == 2 and "active pass keys: none" in out
    run(runner, env, "keys", "generate", "--root")
    code, out = run(runner, env, "keys", "generate", "--root")
    assert code == 1 and "re-pinning" in out
    assert "Traceback" not in out


def test_no_passphrase_outside_dev_mode_is_refused(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "WALLET_KEY_PASSPHRASE": ""}
    code, out = run(runner, env, "keys", "generate")
    assert code == 1 and "WALLET_KEY_PASSPHRASE" in out
    assert not (tmp_path / "keys").exists() or not any((tmp_path / "keys").iterdir())


def test_bad_configuration_is_a_clear_error(runner: CliRunner, env: dict[str, str]) -> None:
    code, out = run(runner, {**env, "WALLET_PUBLIC_URL": "pass.stadt.de"}, "keys", "list")
    assert code == 1 and "WALLET_PUBLIC_URL" in out


def test_passphrase_never_appears_in_output(runner: CliRunner, env: dict[str, str]) -> None:
    code, out = run(runner, env, "keys", "generate")
    code2, out2 = run(runner, env, "keys", "list", "--json")
    assert code == code2 == 0
    assert env["WALLET_KEY_PASSPHRASE"] not in out + out2


def test_demo_tokens_verify_with_jwcrypto_given_the_cli_jwks(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    """An independent JOSE implementation accepts our tokens with `wallet keys jwks`."""
    from jwcrypto import jwk, jws
    from jwcrypto.common import JWKeyNotFound

    assert run(runner, env, "demo", "--out", str(tmp_path / "out"))[0] == 0
    code, out = run(runner, env, "keys", "jwks")
    assert code == 0
    keyset = jwk.JWKSet.from_json(out)
    for type_id in ("library", "parking"):
        token = (tmp_path / "out" / f"{type_id}.jws").read_text().strip()
        signed = jws.JWS()
        signed.deserialize(token)
        signed.verify(keyset)  # raises if no key in the set verifies it
        assert json.loads(signed.payload)["pt"] == type_id
        tampered = jws.JWS()
        tampered.deserialize(token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"))
        with pytest.raises((jws.InvalidJWSSignature, JWKeyNotFound)):
            tampered.verify(keyset)  # with a key set, jwcrypto reports "no working key"


def test_key_actions_are_audited_when_the_database_is_set_up(
    runner: CliRunner, env: dict[str, str]
) -> None:
    code, out = run(runner, env, "keys", "generate")
    assert code == 0 and "not written to the audit log" in out  # no schema yet: warned
    assert run(runner, env, "db", "upgrade")[0] == 0
    code, out = run(runner, env, "keys", "generate", "--root")
    assert code == 0 and "audit log" not in out
    (pass_key,) = [k for k in kids(runner, env) if k["role"] == "pass"]
    assert run(runner, env, "keys", "retire", str(pass_key["kid"]))[0] == 0
    code, out = run(runner, env, "audit", "show", "--json")
    actions = [json.loads(line)["action"] for line in out.splitlines() if line.strip()]
    assert code == 0 and "key.generate" in actions and "key.retire" in actions


def test_new_key_ids_never_start_with_a_dash() -> None:
    """One thumbprint in 64 starts with "-", which a command line reads as an option."""
    from tests.factories import NOW
    from wallet.keys import KeyRole, generate_key

    kids = [generate_key(role=KeyRole.ROOT, now=NOW).kid for _ in range(640)]
    assert not [kid for kid in kids if kid.startswith("-")]


def _key_with_dash_kid() -> SigningKey:
    """A key as older releases could make it: its kid starts with "-"."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.factories import NOW
    from wallet.keys import KeyInfo, KeyRole, KeyState, kid_for

    while True:
        private = ec.generate_private_key(ec.SECP256R1())
        kid = kid_for(private.public_key())
        if kid.startswith("-"):
            break
    info = KeyInfo(
        kid=kid, alg="ES256", role=KeyRole.PASS, state=KeyState.ACTIVE, created=NOW,
        not_before=NOW, not_after=None, pass_types=frozenset({"library"}),
    )  # fmt: skip
    return SigningKey(info=info, key=private)


@pytest.mark.parametrize("action", ["rotate", "retire", "revoke"])
def test_existing_key_whose_kid_starts_with_a_dash_can_still_be_named(
    runner: CliRunner, env: dict[str, str], action: str
) -> None:
    from wallet.keystore import KeyStore

    passphrase = env["WALLET_KEY_PASSPHRASE"].encode()
    store = KeyStore(Path(env["WALLET_SIGNING_KEYS_DIR"]), passphrase=passphrase, dev_mode=False)
    key = _key_with_dash_kid()
    store.save(key)
    extra = ["--yes"] if action == "revoke" else []
    code, out = run(runner, env, "keys", action, key.kid, *extra)
    assert code == 0, out
    assert "No such option" not in out
    state = {k["kid"]: k["state"] for k in kids(runner, env)}[key.kid]
    assert state == {"rotate": "retired", "retire": "retired", "revoke": "revoked"}[action]
