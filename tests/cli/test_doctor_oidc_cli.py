"""``wallet doctor`` checks the city's identity provider before staff meet a refusal page.

Against the real provider of the OIDC tests (tests/oidc/provider.mjs) on loopback,
on each database backend: a working set-up is ``ok``; a wrong or unreachable
issuer URL, a client secret file that cannot be read, and a discovery document
that lacks what a sign-in needs are each a finding that says what to do (and
exit 1). The broken discovery documents are the real provider's own, served
altered by a small HTTP server on loopback, as a misconfigured proxy would.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.cli.admin import Wallet, cli_env
from tests.oidc.provider import ROLES, ROLES_ENV, Provider, requires_node, running_provider
from tests.standins.smtp import tls_files
from wallet.config import Settings
from wallet.services import doctor
from wallet.services.context import Services
from wallet.store.db import Database

pytestmark = requires_node


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with running_provider(
        redirect_uris=["https://pass.stadt-musterstadt.de/console/oidc/callback"],
        post_logout_redirect_uris=[],
        log=tmp_path_factory.mktemp("doctor-oidc") / "provider.log",
    ) as running:
        yield running


@pytest.fixture
def instance(db: Database, services: Services, tmp_path: Path) -> Wallet:
    """An instance after `wallet setup` in development mode (as in test_doctor_cli)."""
    env = cli_env(db, services.settings.signing_keys_dir, tmp_path / "instance",
                  "https://pass.stadt-musterstadt.de")  # fmt: skip
    wallet = Wallet(CliRunner(), env)
    wallet.ok("setup")
    return wallet


@pytest.fixture
def oidc_env(provider: Provider, tmp_path: Path) -> dict[str, str]:
    """What an administrator puts into wallet.env; the secret in a file, as the README says."""
    secret_file = tmp_path / "oidc-client-secret"
    secret_file.write_text(provider.client_secret + "\n")
    secret_file.chmod(0o600)
    return {
        "WALLET_OIDC_ISSUER": provider.issuer,
        "WALLET_OIDC_CLIENT_ID": provider.client_id,
        "WALLET_OIDC_CLIENT_SECRET_FILE": str(secret_file),
        "WALLET_OIDC_ROLES": ROLES_ENV,
    }


def provider_section(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if "identity provider" in line]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_working_provider_is_ok(instance: Wallet, oidc_env: dict[str, str]) -> None:
    result = instance("doctor", **oidc_env)
    assert result.exit_code == 0, result.output
    assert provider_section(result) == ["ok       identity provider"]


def test_without_oidc_there_is_no_provider_section(instance: Wallet) -> None:
    result = instance("doctor")
    assert result.exit_code == 0, result.output
    assert provider_section(result) == []


def test_an_issuer_nobody_answers_at(instance: Wallet, oidc_env: dict[str, str]) -> None:
    port = free_port()
    result = instance("doctor", **{**oidc_env, "WALLET_OIDC_ISSUER": f"http://127.0.0.1:{port}"})
    assert result.exit_code == 1
    (line,) = provider_section(result)
    assert line.startswith("ERROR    identity provider: [oidc-discovery-unusable]")
    assert f"http://127.0.0.1:{port}/.well-known/openid-configuration" in line
    assert "cannot be reached" in line and "WALLET_OIDC_ISSUER" in line


def test_an_issuer_url_with_a_wrong_path(instance: Wallet, oidc_env: dict[str, str]) -> None:
    """A Keycloak-style realm path where the provider has none: its discovery is a 404."""
    issuer = f"{oidc_env['WALLET_OIDC_ISSUER']}/realms/stadt"
    result = instance("doctor", **{**oidc_env, "WALLET_OIDC_ISSUER": issuer})
    assert result.exit_code == 1
    (line,) = provider_section(result)
    assert "[oidc-discovery-unusable]" in line and "HTTP 404" in line


def test_an_issuer_spelled_otherwise_than_the_provider_names_itself(
    instance: Wallet, oidc_env: dict[str, str], provider: Provider
) -> None:
    """localhost for 127.0.0.1: the document is found, but every ID token names the other."""
    spelled = provider.issuer.replace("127.0.0.1", "localhost")
    result = instance("doctor", **{**oidc_env, "WALLET_OIDC_ISSUER": spelled})
    assert result.exit_code == 1
    (line,) = provider_section(result)
    assert "[oidc-issuer-mismatch]" in line
    assert repr(provider.issuer) in line  # what to set it to


@pytest.mark.parametrize("content", [None, ""])
def test_a_client_secret_file_that_cannot_be_used(
    instance: Wallet, oidc_env: dict[str, str], tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "mistyped-secret-file"
    if content is not None:
        path.write_text(content)
    result = instance("doctor", **{**oidc_env, "WALLET_OIDC_CLIENT_SECRET_FILE": str(path)})
    assert result.exit_code == 1
    (line,) = provider_section(result)
    assert "[oidc-client-secret-unusable]" in line and str(path) in line
    assert ("cannot be read" if content is None else "is empty") in line


def test_a_roles_mapping_that_does_not_parse_names_the_setting(
    instance: Wallet, oidc_env: dict[str, str]
) -> None:
    """Such settings stop every command at once, the doctor too, saying what is wrong."""
    result = instance("doctor", **{**oidc_env, "WALLET_OIDC_ROLES": "wallet-admins=boss"})
    assert result.exit_code == 1
    assert "WALLET_OIDC_ROLES" in result.output and "'boss'" in result.output
    assert "admin, issuer, verifier" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("roles", "named"),
    [((), ""), ((("wallet-admins", "boss"),), "wallet-admins=boss"),
     ((("wallet-desk", "issuer"), ("wallet-desk", "admin")), "")],
)  # fmt: skip
def test_a_roles_mapping_given_in_code_is_checked_too(
    provider: Provider, roles: tuple[tuple[str, str], ...], named: str
) -> None:
    """Settings built in code skip the environment's parser: the check does not rely on it."""
    settings = Settings(
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
        oidc_roles=roles,
    )
    findings = doctor.check_oidc(settings)
    assert [f.code for f in findings] == ["oidc-roles-invalid"]
    assert named in findings[0].message
    assert doctor.check_oidc(dataclasses.replace(settings, oidc_roles=ROLES)) == []


# -- discovery documents that lack what a sign-in needs ------------------------------------


class _AlteredDiscovery(ThreadingHTTPServer):
    """Serves the real provider's discovery document (and keys), altered, as its own."""

    documents: dict[str, Any]


class _Handler(BaseHTTPRequestHandler):
    server: _AlteredDiscovery

    def do_GET(self) -> None:
        if self.path not in self.server.documents:
            self.send_error(404)
            return
        body = json.dumps(self.server.documents[self.path]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


Change = Callable[[dict[str, Any]], None]
Altered = Callable[..., str]


@pytest.fixture
def altered(provider: Provider, tmp_path: Path) -> Iterator[Altered]:
    """``altered(change, tls=False)``: an issuer URL on loopback whose discovery document is
    the provider's after ``change``; with ``tls``, served over https with a certificate
    of the test's own CA (tmp_path/ca.pem), its keys served there too."""
    discovery = "/.well-known/openid-configuration"
    original = httpx.get(f"{provider.issuer}{discovery}", timeout=10).json()
    keys = httpx.get(original["jwks_uri"], timeout=10).json()
    servers: list[_AlteredDiscovery] = []

    def serve(change: Change, *, tls: bool = False) -> str:
        server = _AlteredDiscovery(("127.0.0.1", 0), _Handler)
        issuer = f"http{'s' if tls else ''}://127.0.0.1:{server.server_port}"
        document = {**original, "issuer": issuer}
        if tls:
            cert, key = tls_files(tmp_path)
            shutil.copy(cert, tmp_path / "ca.pem")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            for name in ("authorization_endpoint", "token_endpoint"):
                document[name] = f"{issuer}/{name}"  # never called by the doctor
            document["jwks_uri"] = f"{issuer}/jwks"
        change(document)
        server.documents = {discovery: document, "/jwks": keys}
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return issuer

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def _drop(name: str) -> Change:
    return lambda document: document.pop(name)


def _set(name: str, value: object) -> Change:
    return lambda document: document.__setitem__(name, value)


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        (_drop("jwks_uri"), "oidc-endpoint-missing", "jwks_uri"),
        (_drop("token_endpoint"), "oidc-endpoint-missing", "token_endpoint"),
        (_set("authorization_endpoint", ["https://login.stadt.de/auth"]),
         "oidc-endpoint-missing", "authorization_endpoint"),
        (_set("code_challenge_methods_supported", ["plain"]), "oidc-pkce-s256-missing", "S256"),
        (_set("id_token_signing_alg_values_supported", ["HS256"]), "oidc-id-token-algorithm",
         "HS256"),
        (_set("jwks_uri", f"http://127.0.0.1:{free_port()}/jwks"), "oidc-keys-unusable",
         "cannot be reached"),
    ],
    ids=["no-jwks-uri", "no-token-endpoint", "endpoint-not-a-url", "no-s256", "hs256-only",
         "keys-unreachable"],
)  # fmt: skip
def test_a_discovery_document_that_lacks_what_a_sign_in_needs(
    instance: Wallet, oidc_env: dict[str, str], altered: Altered, change: Change, code: str,
    words: str,
) -> None:  # fmt: skip
    result = instance("doctor", **{**oidc_env, "WALLET_OIDC_ISSUER": altered(change)})
    assert result.exit_code == 1
    (line,) = provider_section(result)
    assert line.startswith(f"ERROR    identity provider: [{code}]") and words in line


def test_the_altered_document_itself_passes(
    instance: Wallet, oidc_env: dict[str, str], altered: Altered
) -> None:
    """The stand-in changes nothing by itself: the findings above are the changes'."""
    result = instance("doctor", **{**oidc_env, "WALLET_OIDC_ISSUER": altered(lambda d: None)})
    assert result.exit_code == 0, result.output
    assert provider_section(result) == ["ok       identity provider"]


def test_a_provider_with_a_certificate_of_the_citys_own_ca(
    instance: Wallet, oidc_env: dict[str, str], altered: Altered, tmp_path: Path
) -> None:
    """Unknown CA: a finding naming REQUESTS_CA_BUNDLE; with it set, everything is ok."""
    env = {**oidc_env, "WALLET_OIDC_ISSUER": altered(lambda d: None, tls=True)}
    refused = instance("doctor", **env, REQUESTS_CA_BUNDLE=None)
    assert refused.exit_code == 1
    (line,) = provider_section(refused)
    assert "[oidc-discovery-unusable]" in line and "SSLError" in line
    assert "REQUESTS_CA_BUNDLE" in line
    trusted = instance("doctor", **env, REQUESTS_CA_BUNDLE=str(tmp_path / "ca.pem"))
    assert trusted.exit_code == 0, trusted.output
    assert provider_section(trusted) == ["ok       identity provider"]


def test_an_endpoint_in_plain_http_beside_an_https_issuer(
    instance: Wallet, oidc_env: dict[str, str], altered: Altered, tmp_path: Path
) -> None:
    """A provider behind a proxy that does not know its public https address (Keycloak
    without its proxy headers) names http:// endpoints: the browser would leave TLS."""
    issuer = altered(
        lambda d: d.__setitem__("authorization_endpoint", "http://127.0.0.1:1/auth"), tls=True
    )
    env = {**oidc_env, "WALLET_OIDC_ISSUER": issuer, "REQUESTS_CA_BUNDLE": str(tmp_path / "ca.pem")}
    result = instance("doctor", **env)
    assert result.exit_code == 1
    (line,) = provider_section(result)
    assert "[oidc-endpoint-missing]" in line and "authorization_endpoint" in line
    assert "https" in line
