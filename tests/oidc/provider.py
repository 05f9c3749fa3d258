"""The real OpenID Connect provider for tests: tests/oidc/provider.mjs (the certified
`oidc-provider` package) started on a loopback port, and a way through its pages.

The provider's clock is set to this process's wall clock (which the clock-ahead run
moves), so its tokens are as fresh for the app as in real life. Its configuration,
with the client secret, travels in the environment, never on a command line.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("provider.mjs")
CLIENT_ID = "wallet-console"
ROLES = (("wallet-admins", "admin"), ("wallet-desk", "issuer"), ("wallet-enforcement", "verifier"))
ROLES_ENV = "wallet-admins=admin,wallet-desk=issuer,wallet-enforcement=verifier"
# Subjects are the login names here; names and addresses let tests look for leaks.
ACCOUNTS: dict[str, dict[str, Any]] = {
    "erika.mustermann": {
        "password": "city-pass-erika",
        "groups": ["wallet-admins", "staff-all"],
        "name": "Erika Mustermann",
        "email": "erika.mustermann@stadt-musterstadt.de",
    },
    "max.desk": {
        "password": "city-pass-max",
        "groups": ["wallet-desk"],
        "name": "Max Schalter",
        "email": "max.schalter@stadt-musterstadt.de",
    },
    "otto.normalverbraucher": {
        "password": "city-pass-otto",
        "groups": ["sportverein-vorstand"],
        "name": "Otto Normalverbraucher",
        "email": "otto.normalverbraucher@stadt-musterstadt.de",
    },
}
PERSONAL = [
    text
    for sub, account in ACCOUNTS.items()
    for text in (sub, account["name"], account["email"], "sportverein-vorstand")
]

requires_node = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "oidc-provider").is_dir(),
    reason="the OIDC tests need Node.js and `npm ci` (node_modules/oidc-provider)",
)


@dataclass
class Provider:
    issuer: str
    client_id: str
    client_secret: str

    def control(self, **body: Any) -> dict[str, Any]:
        answer = httpx.post(f"{self.issuer}/__control", json=body, timeout=10)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def misbehave(self, mode: str) -> None:
        """normal, wrong_audience, expired or nonce_mismatch (the ID token, re-signed)."""
        self.control(mode=mode)

    def ended_sessions(self) -> list[str]:
        ended: list[str] = self.control()["ended"]
        return ended


@contextmanager
def running_provider(
    *, redirect_uris: list[str], post_logout_redirect_uris: list[str], log: Path
) -> Iterator[Provider]:
    secret = secrets.token_urlsafe(24)
    config = {
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "redirect_uris": redirect_uris,
        "post_logout_redirect_uris": post_logout_redirect_uris,
        "accounts": ACCOUNTS,
    }
    env = {**os.environ, "OIDC_TEST_CONFIG": json.dumps(config)}
    with log.open("wb") as errors:
        process = subprocess.Popen(
            ["node", str(SCRIPT)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    try:
        assert process.stdout is not None
        first: list[bytes] = []
        reader = threading.Thread(target=lambda: first.append(process.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=30)
        line = first[0].decode() if first else ""
        if not line.startswith("listening "):
            raise AssertionError(f"the OIDC provider did not start: {log.read_text()[-2000:]}")
        provider = Provider(issuer=line.split()[1], client_id=CLIENT_ID, client_secret=secret)
        # Its clock keeps this process's (possibly moved) wall clock.
        real_ms = provider.control()["real_ms"]
        offset = int(datetime.now(UTC).timestamp() * 1000) - real_ms
        provider.control(offset_ms=offset)
        yield provider
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


_FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.S)


def through_provider(
    start: str, *, username: str, password: str, back_to: str, browser: httpx.Client
) -> str:
    """Follow the provider's pages as a person would (sign in, allow) until it sends the
    browser back to ``back_to``; returns that URL (the callback with code and state)."""
    url = start
    for _ in range(20):
        if url.startswith(back_to):
            return url
        answer = browser.get(url)
        while answer.is_redirect:
            url = urljoin(url, answer.headers["location"])
            if url.startswith(back_to):
                return url
            answer = browser.get(url)
        html = answer.text
        action = _FORM.search(html)
        assert action is not None, f"no form on the provider's page {url}: {html[:500]}"
        target = urljoin(url, unescape(action.group(1)))
        form = {"login": username, "password": password} if 'name="login"' in html else {}
        answer = browser.post(target, data=form)
        assert answer.is_redirect, f"the provider refused: {answer.text[:500]}"
        url = urljoin(target, answer.headers["location"])
    raise AssertionError("the provider never sent the browser back")
