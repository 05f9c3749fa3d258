"""OIDC and TOTP settings: read from WALLET_* variables, refused with a message that says
what to set; the client secret never from a command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from wallet.config import OIDC_ROLE_NAMES, Settings
from wallet.domain import Role
from wallet.errors import ConfigError

BASE = {
    "WALLET_OIDC_ISSUER": "https://login.stadt-musterstadt.de/realms/stadt",
    "WALLET_OIDC_CLIENT_ID": "wallet-console",
    "WALLET_OIDC_CLIENT_SECRET_FILE": "/run/secrets/oidc",
    "WALLET_OIDC_ROLES": "wallet-admins=admin, wallet-desk=issuer,wallet-enforcement=verifier",
}


def test_role_names_are_the_domains() -> None:
    assert tuple(role.value for role in Role) == OIDC_ROLE_NAMES


def test_oidc_settings_are_read() -> None:
    settings = Settings.from_env(BASE)
    assert settings.oidc_enabled
    assert settings.oidc_issuer == "https://login.stadt-musterstadt.de/realms/stadt"
    assert settings.oidc_roles == (
        ("wallet-admins", "admin"),
        ("wallet-desk", "issuer"),
        ("wallet-enforcement", "verifier"),
    )
    assert settings.oidc_roles_claim == "groups" and settings.oidc_scopes == "openid"
    assert settings.totp_policy == "all"  # local accounts are for emergencies then


def test_without_oidc_nothing_changes() -> None:
    settings = Settings.from_env({})
    assert not settings.oidc_enabled and settings.totp_policy == "admins"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"WALLET_OIDC_CLIENT_ID": ""}, "WALLET_OIDC_CLIENT_ID must be set"),
        ({"WALLET_OIDC_CLIENT_SECRET": "s3cret"}, "exactly one of them"),
        ({"WALLET_OIDC_CLIENT_SECRET_FILE": ""}, "WALLET_OIDC_CLIENT_SECRET_FILE"),
        ({"WALLET_OIDC_ROLES": ""}, "must map at least one group"),
        ({"WALLET_OIDC_ROLES": "wallet-admins=root"}, "a role is one of admin, issuer, verifier"),
        ({"WALLET_OIDC_ROLES": "wallet-admins"}, "GROUP=ROLE pairs"),
        ({"WALLET_OIDC_ROLES": "a=admin,a=issuer"}, "names the group 'a' twice"),
        ({"WALLET_OIDC_SCOPES": "profile groups"}, "must include openid"),
        ({"WALLET_OIDC_ISSUER": "http://login.stadt.de"}, "must be an https URL"),
        ({"WALLET_OIDC_ROLES_CLAIM": "groups; drop"}, "WALLET_OIDC_ROLES_CLAIM"),
        ({"WALLET_TOTP_REQUIRED": "sometimes"}, "enrolled, admins or all"),
    ],
)
def test_bad_oidc_settings_say_what_to_set(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**BASE, **change})
    assert message in refused.value.message


def test_oidc_variables_without_an_issuer_are_refused() -> None:
    with pytest.raises(ConfigError, match="WALLET_OIDC_ISSUER is not"):
        Settings.from_env({"WALLET_OIDC_CLIENT_ID": "wallet-console"})


def test_group_names_may_hold_equals_signs_commas_and_slashes() -> None:
    """Keycloak's full group paths; AD's distinguished names (pairs then split at ';')."""
    roles = "/stadt/wallet-admins=admin; CN=Wallet Desk,OU=Groups,DC=stadt=issuer"
    settings = Settings.from_env({**BASE, "WALLET_OIDC_ROLES": roles})
    assert settings.oidc_roles == (
        ("/stadt/wallet-admins", "admin"),
        ("CN=Wallet Desk,OU=Groups,DC=stadt", "issuer"),
    )


def test_a_client_secret_from_the_environment_stays_out_of_repr() -> None:
    env = {
        **BASE,
        "WALLET_OIDC_CLIENT_SECRET_FILE": "",
        "WALLET_OIDC_CLIENT_SECRET": "s3cr3t-v4lue",
    }
    settings = Settings.from_env(env)
    assert settings.oidc_secret() == "s3cr3t-v4lue"
    assert "s3cr3t-v4lue" not in repr(settings)


def test_client_secret_comes_from_its_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "oidc-secret"
    settings = Settings.from_env({**BASE, "WALLET_OIDC_CLIENT_SECRET_FILE": str(secret_file)})
    with pytest.raises(ConfigError, match="cannot be read"):
        settings.oidc_secret()
    secret_file.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        settings.oidc_secret()
    secret_file.write_text("the-client-secret\n")
    assert settings.oidc_secret() == "the-client-secret"
