"""The shipped HAProxy configuration, with only addresses and certificates substituted.

Tests and scripts/bench_cluster.py run deploy/haproxy/haproxy.cfg itself: every
substitution below must match exactly one line of it, so a change to the shipped
file either still runs here or fails loudly.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def available() -> bool:
    return Path(HAPROXY).is_file() and os.access(HAPROXY, os.X_OK)


@dataclass(frozen=True)
class Site:
    """What a city fills in where the shipped file says SITE."""

    https_bind: str  # e.g. 127.0.0.1:8443
    http_bind: str
    metrics_bind: str
    certificate: Path  # chain and key, PEM
    servers: Sequence[tuple[str, str]]  # (name, host:port)
    state_dir: Path  # for the admin socket
    privileged: bool  # root: keep chroot/user/group, as in production
    log_target: str | None = None  # e.g. "stdout format raw local0" instead of syslog
    maxconn: int = 2  # requests a server takes at once: its WALLET_WORKERS


def _replace_one(text: str, pattern: str, replacement: str) -> str:
    new, count = re.subn(pattern, lambda _: replacement, text, flags=re.MULTILINE)
    if count != 1:
        raise AssertionError(f"the shipped haproxy.cfg has {count} lines matching {pattern!r}")
    return new


def render(site: Site, shipped: str | None = None) -> str:
    text = SHIPPED.read_text(encoding="utf-8") if shipped is None else shipped
    text = _replace_one(
        text,
        r"^    bind :443 ssl crt /etc/haproxy/certs/wallet\.pem",
        f"    bind {site.https_bind} ssl crt {site.certificate}",
    )
    text = _replace_one(text, r"^    bind :80$", f"    bind {site.http_bind}")
    text = _replace_one(text, r"^    bind 127\.0\.0\.1:8405$", f"    bind {site.metrics_bind}")
    text = _replace_one(
        text,
        r"^    stats socket /run/haproxy/admin\.sock",
        f"    stats socket {site.state_dir / 'admin.sock'}",
    )
    if site.log_target is not None:
        text = _replace_one(text, r"^    log /dev/log local0$", f"    log {site.log_target}")
    # The one maxconn, on the default-server line: each server's WALLET_WORKERS.
    text = _replace_one(text, r"(?<= maxconn )\d+$", str(site.maxconn))
    servers = "\n".join(f"    server {name} {address} check" for name, address in site.servers)
    text = _replace_one(text, r"^    server web1 .*\n(?:    server web\d+ .*\n)*", servers + "\n")
    if not site.privileged:  # a user without root cannot chroot or change user
        for line in (r"^    chroot .*\n", r"^    user haproxy\n", r"^    group haproxy\n"):
            text = _replace_one(text, line, "")
    return text


def check(config: Path) -> subprocess.CompletedProcess[str]:
    """`haproxy -c -f`: what an administrator runs before a reload."""
    return subprocess.run(
        [HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30, check=False
    )


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """HAProxy in the foreground (-db overrides the shipped `daemon`)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [HAPROXY, "-db", "-f", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one
        )


def write_certificate(folder: Path) -> tuple[Path, Path]:
    """A test CA and a certificate for 127.0.0.1: (HAProxy's chain+key PEM, the CA file)."""
    from tests.standins.apns import Authority, write_cert, write_key

    folder.mkdir(parents=True, exist_ok=True)
    authority = Authority.create("Test city CA")
    key, cert = authority.issue("localhost", server=True)
    write_cert(folder / "chain.pem", cert)
    write_key(folder / "key.pem", key)
    combined = folder / "wallet.pem"
    combined.write_bytes((folder / "chain.pem").read_bytes() + (folder / "key.pem").read_bytes())
    combined.chmod(0o600)
    return combined, write_cert(folder / "ca.pem", authority.cert)


def _all_up(admin_socket: Path, count: int) -> bool:
    """Whether HAProxy's admin socket reports all ``count`` app servers UP."""
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(2)
            conn.connect(str(admin_socket))
            conn.sendall(b"show stat\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
    except OSError:
        return False
    rows = [line.split(",") for line in data.decode().splitlines()[1:] if line]
    states = [r[17] for r in rows if r[0] == "wallet_servers" and r[1].startswith("web")]
    return len(states) == count and all(s == "UP" for s in states)


@contextmanager
def serving(
    folder: Path, addresses: Sequence[str], *, maxconn: int = 2
) -> Iterator[tuple[int, Path]]:
    """The shipped configuration in front of ``addresses`` (app servers web0, web1, ...),
    started and with every server UP: yields the HTTPS port and the CA file to trust."""
    from tests.cluster.cluster import free_port

    certificate, ca_file = write_certificate(folder / "tls")
    port = free_port()
    site = Site(
        https_bind=f"127.0.0.1:{port}",
        http_bind=f"127.0.0.1:{free_port()}",
        metrics_bind=f"127.0.0.1:{free_port()}",
        certificate=certificate,
        servers=[(f"web{i}", address) for i, address in enumerate(addresses)],
        state_dir=folder,
        privileged=False,
        log_target="stdout format raw local0",
        maxconn=maxconn,
    )
    config = folder / "haproxy.cfg"
    config.write_text(render(site))
    process = start(config, folder / "haproxy.log")
    try:
        deadline = time.monotonic() + 15
        while not _all_up(folder / "admin.sock", len(addresses)):  # rise 2 checks, 1 s apart
            assert time.monotonic() < deadline, (folder / "haproxy.log").read_text()
            time.sleep(0.1)
        yield port, ca_file
    finally:
        process.kill()
        process.wait(10)


def read_head(conn: socket.socket) -> bytes:
    """What a stand-in app server has read of a request up to the end of its head
    (with any body bytes that came along); empty if the connection closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data
