"""Settings come from an explicit mapping, never from import-time globals."""

from __future__ import annotations

from pathlib import Path

import pytest

from wallet.config import Settings
from wallet.errors import ConfigError


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.public_url == s.issuer == "http://127.0.0.1:8000"
    assert s.key_passphrase is None and s.dev_mode is False


def test_values_are_read_and_passphrase_is_hidden_from_repr() -> None:
    s = Settings.from_env(
        {
            "WALLET_PUBLIC_URL": "https://pass.stadt.de/",
            "WALLET_SIGNING_KEYS_DIR": "/srv/keys",
            "WALLET_KEY_PASSPHRASE": "sehr geheimes passwort",
            "WALLET_DEV_MODE": "0",
            "WALLET_STATUS_LIST_TTL": "600",
        }
    )
    assert s.public_url == s.issuer == "https://pass.stadt.de"
    assert s.signing_keys_dir == Path("/srv/keys")
    assert s.key_passphrase == b"sehr geheimes passwort"
    assert s.status_list_ttl == 600
    assert "geheim" not in repr(s)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"WALLET_PUBLIC_URL": "ftp://x"}, "WALLET_PUBLIC_URL"),
        ({"WALLET_ISSUER": "not a url"}, "WALLET_ISSUER"),
        ({"WALLET_KEY_PASSPHRASE": "short"}, "WALLET_KEY_PASSPHRASE"),
        ({"WALLET_DEV_MODE": "maybe"}, "WALLET_DEV_MODE"),
        ({"WALLET_STATUS_LIST_TTL": "soon"}, "WALLET_STATUS_LIST_TTL"),
        ({"WALLET_BUNDLE_LIFETIME": "5"}, "WALLET_BUNDLE_LIFETIME"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env)


def test_trusted_proxies_is_a_small_count() -> None:
    assert Settings.from_env({"WALLET_TRUSTED_PROXIES": "1"}).trusted_proxies == 1
    with pytest.raises(ConfigError, match="WALLET_TRUSTED_PROXIES"):
        Settings.from_env({"WALLET_TRUSTED_PROXIES": "many"})


SMTP = {
    "WALLET_SMTP_HOST": "mail.stadt.example",
    "WALLET_SMTP_FROM": "Stadt <ausweise@stadt.example>",
}


def test_smtp_settings_default_to_starttls_on_the_submission_port() -> None:
    settings = Settings.from_env(SMTP)
    assert settings.smtp_enabled
    assert (settings.smtp_security, settings.smtp_port, settings.smtp_per_minute) == (
        "starttls",
        587,
        60,
    )
    assert Settings.from_env({**SMTP, "WALLET_SMTP_SECURITY": "tls"}).smtp_port == 465
    assert not Settings.from_env({}).smtp_enabled


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"WALLET_SMTP_SECURITY": "ssl3"}, "WALLET_SMTP_SECURITY"),
        ({"WALLET_SMTP_SECURITY": "none"}, "in clear"),  # a remote host without TLS
        ({"WALLET_SMTP_FROM": "nobody"}, "WALLET_SMTP_FROM"),
        ({"WALLET_SMTP_USERNAME": "wallet"}, "WALLET_SMTP_PASSWORD_FILE"),
        ({"WALLET_SMTP_PORT": "99999"}, "WALLET_SMTP_PORT"),
    ],
)
def test_unusable_smtp_settings_are_refused_saying_what_to_set(
    extra: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env({**SMTP, **extra})
