"""The shipped deployment files: HAProxy accepts its configuration, systemd its units."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import haproxy

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
HARDENING = (
    "User=wallet",
    "NoNewPrivileges=yes",
    "PrivateTmp=yes",
    "ProtectSystem=strict",
    "ReadWritePaths=/var/lib/wallet",
    "EnvironmentFile=/etc/wallet/wallet.env",
    "Restart=on-failure",
)


def _site(tmp_path: Path, *, privileged: bool) -> haproxy.Site:
    certificate, _ = haproxy.write_certificate(tmp_path / "tls")
    return haproxy.Site(
        https_bind="127.0.0.1:18443",
        http_bind="127.0.0.1:18080",
        metrics_bind="127.0.0.1:18405",
        certificate=certificate,
        servers=[("web1", "127.0.0.1:18001"), ("web2", "127.0.0.1:18002")],
        state_dir=tmp_path,
        privileged=privileged,
    )


@pytest.mark.skipif(
    not haproxy.available(), reason="HAProxy is not installed (scripts/test installs it)"
)
def test_haproxy_accepts_the_shipped_configuration(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy.render(_site(tmp_path, privileged=os.geteuid() == 0)))
    checked = haproxy.check(config)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ALERT" not in checked.stdout + checked.stderr


@pytest.mark.skipif(
    not haproxy.available(), reason="HAProxy is not installed (scripts/test installs it)"
)
def test_haproxy_refuses_a_broken_configuration(tmp_path: Path) -> None:
    """The check above can fail: a typo in a directive is refused."""
    text = haproxy.render(_site(tmp_path, privileged=False)).replace(
        "option redispatch", "option redispach"
    )
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    assert haproxy.check(config).returncode != 0


def test_substitution_touches_only_addresses_and_certificates(tmp_path: Path) -> None:
    shipped = haproxy.SHIPPED.read_text(encoding="utf-8").splitlines()
    rendered = haproxy.render(_site(tmp_path, privileged=True)).splitlines()
    changed = set(shipped) ^ set(rendered)
    assert changed, "nothing was substituted"
    for line in changed:
        assert re.match(r"\s+(bind|server|stats socket|log) ", line), line


def test_metrics_are_never_routed_from_the_public_frontends() -> None:
    text = haproxy.SHIPPED.read_text(encoding="utf-8")
    sections = re.split(r"^(?=frontend |backend )", text, flags=re.MULTILINE)
    public = [s for s in sections if s.startswith("frontend wallet_")]
    assert len(public) == 2
    for section in public:
        assert "prometheus-exporter" not in section
    https = next(s for s in public if "ssl crt" in s)
    assert "http-request deny deny_status 404 if { path_beg /metrics }" in https
    metrics = next(s for s in sections if "prometheus-exporter" in s)
    assert re.search(r"^    bind 127\.0\.0\.1:\d+$", metrics, flags=re.MULTILINE)
    # The health check is the service's readiness, and a dead server's requests go elsewhere.
    assert "uri /readyz" in text and "option redispatch" in text


def _installed_units(tmp_path: Path) -> list[Path]:
    """The units with /opt/wallet pointing at this checkout and its virtualenv."""
    venv = Path(sys.prefix)
    units = []
    for unit in sorted(UNITS.glob("*.service")):
        text = unit.read_text(encoding="utf-8")
        text = text.replace("/opt/wallet/.venv", str(venv)).replace("/opt/wallet", str(ROOT))
        target = tmp_path / unit.name
        target.write_text(text, encoding="utf-8")
        units.append(target)
    return units


def test_units_are_hardened() -> None:
    units = sorted(UNITS.glob("*.service"))
    assert [u.name for u in units] == ["wallet-web.service", "wallet-worker.service"]
    for unit in units:
        lines = unit.read_text(encoding="utf-8").splitlines()
        for directive in HARDENING:
            assert directive in lines, f"{unit.name} lacks {directive}"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    units = _installed_units(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # The same check fails for a unit whose program is missing: it is a real check.
    broken = tmp_path / "broken" / "wallet-web.service"
    broken.parent.mkdir()
    broken.write_text(units[0].read_text().replace(str(Path(sys.prefix)), "/nonexistent"))
    refused = subprocess.run(
        ["systemd-analyze", "verify", str(broken)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
