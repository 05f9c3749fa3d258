"""What runs out soon: `wallet passes expiring --within 30d` and the console's filter."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from tests.cli.admin import Wallet, wallet_fixture  # noqa: F401 - the `wallet` fixture
from tests.factories import NOW
from tests.web.test_console import login, page_text
from wallet.errors import InputError
from wallet.services import passes
from wallet.services.context import Services
from wallet.store.db import Database

pytestmark = pytest.mark.usefixtures("quick_password_hashes")


def issue_until(db: Database, services: Services, days: int, plate: str) -> str:
    with db.transaction(write=True) as session:
        return passes.issue_pass(
            session, services, type_id="parking", holder={"plate": plate, "zone": "12"},
            valid_until=NOW + timedelta(days=days), actor="test", now=NOW,
        ).record.serial  # fmt: skip


@pytest.fixture
def three(db: Database, services: Services) -> dict[str, str]:
    soon = issue_until(db, services, 10, "D-AB 1")
    later = issue_until(db, services, 60, "D-AB 2")
    gone = issue_until(db, services, 5, "D-AB 3")
    with db.transaction(write=True) as session:
        passes.change_state(session, services, gone, action="revoke", reason="x", actor="t",
                            now=NOW)  # fmt: skip
    return {"soon": soon, "later": later, "revoked": gone}


def test_passes_running_out_soon_are_listed_soonest_first_without_revoked_ones(
    db: Database, three: dict[str, str]
) -> None:
    with db.transaction(write=False) as session:
        month = passes.list_passes(session, expiring_within=timedelta(days=30), now=NOW)
        quarter = passes.list_passes(session, expiring_within=timedelta(days=90), now=NOW)
    assert [r.serial for r in month.items] == [three["soon"]]
    assert [r.serial for r in quarter.items] == [three["soon"], three["later"]]


def test_the_cli_lists_what_to_renew(wallet: Wallet, three: dict[str, str]) -> None:
    wallet = dataclasses.replace(wallet, clock=lambda: NOW)  # the passes' own "today"
    listed = json.loads(wallet.ok("passes", "expiring", "--within", "30d", "--json").stdout)
    assert [p["serial"] for p in listed["passes"]] == [three["soon"]]
    table = wallet.ok("passes", "expiring", "--within", "9w").stdout
    assert three["soon"] in table and three["later"] in table and three["revoked"] not in table


@pytest.mark.parametrize("within", ["0d", "400d", "soon", "-3", "2y"])
def test_a_span_that_is_not_one_is_refused_with_an_example(wallet: Wallet, within: str) -> None:
    result = wallet("passes", "expiring", "--within", within)
    assert result.exit_code == 2 and "like 30d" in result.output


def test_the_window_is_checked_in_the_service_too(db: Database) -> None:
    with db.transaction(write=False) as session, pytest.raises(InputError):
        passes.list_passes(session, expiring_within=timedelta(days=0), now=NOW)


def test_staff_filter_the_console_list_by_what_runs_out(
    client: FlaskClient, make_user: Callable[..., str], three: dict[str, str]
) -> None:
    make_user("anna", "issuer")
    assert login(client, "anna").status_code == 302
    text = page_text(client.get("/console/?expiring=30").get_data(as_text=True))
    assert three["soon"] in text and three["later"] not in text and three["revoked"] not in text
    assert "1 Ausweis gefunden" in text
    assert client.get("/console/?expiring=12").status_code == 400
