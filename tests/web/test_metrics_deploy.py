"""The shipped Grafana dashboard and Prometheus alert rules parse, cover what the issue
asks for, and name only metrics the service exports (tests/web/test_metrics.py checks
the names against a real scrape, so the files cannot drift from the code)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "wallet-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "wallet-dashboard.json"
_METRIC = re.compile(r"\bwallet_[a-z0-9_]+\b")


def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def dashboard_panels() -> list[dict[str, Any]]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [panel for panel in loaded["panels"] if panel["type"] != "row"]


def referenced_names() -> dict[str, set[str]]:
    """Every metric name the files use -> where (alert or panel title)."""
    places = [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()]
    places += [
        (f"panel {p['title']!r}", t["expr"]) for p in dashboard_panels() for t in p["targets"]
    ]
    found: dict[str, set[str]] = {}
    for place, expr in places:
        for name in _METRIC.findall(expr):
            found.setdefault(name, set()).add(place)
    return found


def check_names_exported(exported: Iterable[str]) -> None:
    """Fail naming every metric the dashboard or the alerts use but the service does not export."""
    have = set(exported)
    missing = {name: where for name, where in referenced_names().items() if name not in have}
    assert not missing, "the deploy files use metrics the service does not export: " + "; ".join(
        f"{name} (in {', '.join(sorted(where))})" for name, where in sorted(missing.items())
    )


def test_the_alert_rules_parse_and_cover_what_the_issue_asks_for() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    expressions = {rule["alert"]: " ".join(rule["expr"].split()) for rule in rules}
    assert expressions["WalletNotReady"] == "wallet_ready == 0"
    assert "wallet_outbox_oldest_due_age_seconds) > 900" in expressions["WalletOutboxStuck"]
    assert "wallet_delivery_failures_total" in expressions["WalletDeliveryFailuresRising"]
    assert "wallet_status_list_lifetime_seconds) / 2" in expressions["WalletStatusListStale"]
    assert "wallet_trust_bundle_lifetime_seconds) / 2" in expressions["WalletTrustBundleStale"]
    assert "wallet_login_failures_total" in expressions["WalletLoginFailuresSpike"]
    assert 'status_class="5xx"' in expressions["WalletServerErrors"]
    assert expressions["WalletSlowAnswers"].startswith("histogram_quantile(0.99,")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_alert_rules_and_the_dashboards_queries(tmp_path: Path) -> None:
    """Prometheus's own parser: the alert rules, and each panel's query as a recording rule."""
    queries = [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]
    recorded = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(queries)
    ]}]}  # fmt: skip
    (tmp_path / "dashboard-queries.yml").write_text(yaml.safe_dump(recorded))
    done = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS), str(tmp_path / "dashboard-queries.yml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


def test_the_dashboard_parses_and_every_panel_queries_the_service() -> None:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = dashboard_panels()
    ids = [panel["id"] for panel in loaded["panels"]]
    assert len(ids) == len(set(ids)) and loaded["uid"] == "city-wallet"
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert all(_METRIC.search(target["expr"]) for target in panel["targets"]), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    used = set(referenced_names())
    wanted = {"wallet_passes_issued_total", "wallet_outbox_backlog", "wallet_login_failures_total",
              "wallet_http_request_duration_seconds_bucket"}  # fmt: skip
    assert wanted <= used


def test_a_metric_the_service_does_not_export_is_caught() -> None:
    exported = set(referenced_names())
    check_names_exported(exported)  # all there: passes
    with pytest.raises(AssertionError, match="wallet_outbox_backlog"):
        check_names_exported(exported - {"wallet_outbox_backlog"})
