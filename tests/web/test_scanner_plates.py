"""'Kennzeichen prüfen' in the staff scanner, in real headless Chromium (issue 11).

The officer types the plate of a parked car; the app answers from the signed
plate index of its zones with the network off, says when that data is stale,
and keeps no plate anywhere but in the field. The site, browser and Scanner are
those of tests/web/test_scanner.py (a permit for D-AB 1234 in zone 12 among them).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from tests.factories import HOLDERS, NOW
from tests.web import test_scanner as base
from tests.web.test_scanner import (
    NARROW,
    VERDICT,
    WAIT_MS,
    Scanner,
    Site,
    _issue,
    assert_reflows,
)
from wallet.domain import Role
from wallet.services import devices, passes

pytestmark = base.pytestmark
# The scanner module's fixtures, used here as they are (module-scoped: a site of our own).
playwright, browser, site, scanner = base.playwright, base.browser, base.site, base.scanner

PLATE = HOLDERS["parking"]["plate"]  # D-AB 1234, zone 12, valid


def paired(scanner: Scanner, site: Site, zones: str = "12") -> str:
    """Open the app through a pairing link for a device of ``zones``; synced as that device."""
    with site.db.transaction(write=True) as session:
        pairing = devices.start_pairing(
            session, name="Handy Zone 12", role="verifier", actor="user:vera",
            actor_role=Role.VERIFIER, audit_key=site.services.audit_key, now=site.clock(),
            zones=zones,
        )  # fmt: skip
    scanner.page.goto(f"{site.url}/scan/#pair={pairing.code}")
    scanner.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    scanner.page.wait_for_function(
        "() => navigator.serviceWorker.controller !== null", timeout=WAIT_MS
    )
    scanner.sync_now()  # as the paired device: the bundle and the plate index
    return pairing.device.device_id


def check_plate(scanner: Scanner, typed: str, zone: str = "12") -> dict[str, Any]:
    scanner.page.fill("#plate-text", typed)
    scanner.page.fill("#plate-zone", zone)
    scanner.page.click("#plate-form button[type=submit]")
    return scanner.verdict()


def held_state(scanner: Scanner) -> dict[str, Any]:
    """What the app keeps in IndexedDB, and its scan log."""
    found: dict[str, Any] = scanner.page.evaluate(
        """() => new Promise((resolve) => {
            const open = indexedDB.open("wallet-scanner");
            open.onsuccess = () => {
              const db = open.result;
              const state = db.transaction("state").objectStore("state");
              const keys = state.getAllKeys();
              const values = state.getAll();
              values.onsuccess = () => {
                const log = db.transaction("log").objectStore("log").getAll();
                log.onsuccess = () => resolve({
                  keys: keys.result, values: JSON.stringify(values.result), log: log.result,
                });
              };
            };
        })"""
    )
    return found


def test_a_permit_is_found_valid_offline_as_dab1234_d_ab_1234_and_with_an_en_dash(
    scanner: Scanner, site: Site
) -> None:
    paired(scanner, site)
    stand = scanner.page.inner_text("#plate-stand")
    assert re.search(r"heute \d\d:\d\d, [1-9]\d* Parkausweise \(12\)", stand), stand
    scanner.go_offline_and_reload()
    for typed in ("dab1234", "D AB 1234", "D\u2013AB 1234"):
        verdict = check_plate(scanner, typed)
        assert (verdict["tone"], verdict["title"]) == ("green", "GÜLTIG"), typed
        assert dict(verdict["fields"])["Kennzeichen"] == PLATE
        assert dict(verdict["fields"])["Zone"] == "12"
        assert "ohne Netz" in verdict["message"] and verdict["focused"] == "verdict-title"
        scanner.back()
        assert scanner.page.evaluate("document.activeElement.id") == "plate-text"
    scanner.check_page("scanner-plate-valid-offline")


def test_the_verdict_for_another_zone_names_the_permits_zone_only(
    scanner: Scanner, site: Site
) -> None:
    paired(scanner, site, zones="")  # a supervisor's phone: every zone
    scanner.go_offline_and_reload()
    verdict = check_plate(scanner, PLATE, zone="7")
    assert (verdict["tone"], verdict["title"]) == ("red", "ANDERE ZONE")
    assert "nur für Zone 12" in verdict["message"]
    assert verdict["reason"] == "Grund: wrong_zone"
    scanner.check_page("scanner-plate-wrong-zone")


def test_a_zone_this_device_holds_no_data_for_is_asked_online_not_called_no_permit(
    scanner: Scanner, site: Site
) -> None:
    paired(scanner, site, zones="40")  # an officer of zone 40 helping out in zone 12
    verdict = check_plate(scanner, PLATE, zone="12")
    assert (verdict["tone"], verdict["title"]) == ("green", "GÜLTIG")
    assert "online beim Dienst" in verdict["message"]
    scanner.back()
    scanner.context.set_offline(True)
    offline = check_plate(scanner, PLATE, zone="12")
    assert (offline["tone"], offline["title"]) == ("amber", "KEINE AKTUELLEN DATEN")


def test_revoking_a_permit_turns_its_plate_invalid_after_the_next_sync(
    scanner: Scanner, site: Site
) -> None:
    issued = _issue(site.db, site.services, "parking", {"plate": "D-RV 77", "zone": "12"})
    paired(scanner, site)
    assert check_plate(scanner, "d rv 77")["title"] == "GÜLTIG"
    scanner.back()
    site.revoke(issued.record.serial)
    scanner.sync_now()
    scanner.context.set_offline(True)
    verdict = check_plate(scanner, "d rv 77")
    assert (verdict["tone"], verdict["title"]) == ("red", "KEIN PARKAUSWEIS")


def test_a_new_car_turns_the_old_plate_invalid_after_the_next_sync(
    scanner: Scanner, site: Site
) -> None:
    issued = _issue(site.db, site.services, "parking", {"plate": "D-NC 1", "zone": "12"})
    paired(scanner, site)
    assert check_plate(scanner, "d nc 1")["title"] == "GÜLTIG"
    scanner.back()
    with site.db.transaction(write=True) as session:
        passes.reissue_pass(
            session, site.services, issued.record.serial, reason="new car", actor="test",
            now=site.clock(), changes={"plate": "D-NC 2"},
        )  # fmt: skip
    scanner.sync_now()
    scanner.context.set_offline(True)
    assert check_plate(scanner, "d nc 1")["title"] == "KEIN PARKAUSWEIS"
    scanner.back()
    assert check_plate(scanner, "d nc 2")["title"] == "GÜLTIG"


def test_a_stale_plate_index_says_so_and_gives_no_verdict_offline(
    scanner: Scanner, site: Site
) -> None:
    paired(scanner, site)
    scanner.context.set_offline(True)
    scanner.context.clock.set_system_time(NOW + timedelta(hours=25))  # past the index's 24 h
    scanner.page.reload()
    scanner.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    assert "veraltet" in scanner.page.inner_text("#plate-stand")
    verdict = check_plate(scanner, PLATE)
    assert (verdict["tone"], verdict["title"]) == ("amber", "KEINE AKTUELLEN DATEN")
    scanner.check_page("scanner-plate-stale")


def test_a_typed_plate_that_cannot_be_german_gets_a_field_error_not_a_verdict(
    scanner: Scanner, site: Site
) -> None:
    paired(scanner, site)
    scanner.page.fill("#plate-text", "12345")
    assert "Noch kein Kennzeichen" in scanner.page.inner_text("#plate-reading")
    scanner.page.click("#plate-form button[type=submit]")
    scanner.page.wait_for_selector("#plate-error:not([hidden])", timeout=WAIT_MS)
    assert scanner.page.is_hidden(VERDICT.split(":")[0])
    assert scanner.page.get_attribute("#plate-text", "aria-invalid") == "true"
    assert "Das ist kein Kennzeichen" in scanner.page.inner_text("#plate-error")
    scanner.check_page("scanner-plate-field-error")


def test_the_plate_reads_back_as_typed_and_says_when_the_split_is_unknown(
    scanner: Scanner, site: Site
) -> None:
    scanner.open_and_sync()
    scanner.page.fill("#plate-text", "dab1234")
    assert scanner.page.inner_text("#plate-reading") == "Gelesen als: D-AB 1234 oder DA-B 1234"
    scanner.page.fill("#plate-text", "d\u2013ab 1234")
    assert scanner.page.inner_text("#plate-reading") == "Gelesen als: D-AB 1234"
    scanner.page.fill("#plate-text", "nl 12-abc-3")  # a Dutch car, its country sign first
    assert scanner.page.inner_text("#plate-reading") == "Gelesen als: NL 12ABC3"


def test_a_revoked_device_forgets_its_plate_data_at_its_next_sync(
    scanner: Scanner, site: Site
) -> None:
    device_id = paired(scanner, site)
    assert "plateIndex" in held_state(scanner)["keys"]
    with site.db.transaction(write=True) as session:
        devices.revoke_device(session, device_id=device_id, actor="user:admin",
                              audit_key=site.services.audit_key, now=site.clock())  # fmt: skip
    scanner.sync_now()
    assert "plateIndex" not in held_state(scanner)["keys"]
    assert "Keine Kennzeichendaten" in scanner.page.inner_text("#plate-stand")


def test_the_device_keeps_no_plate_in_clear_and_logs_none(scanner: Scanner, site: Site) -> None:
    paired(scanner, site)
    check_plate(scanner, PLATE)
    scanner.back()
    held = held_state(scanner)
    assert "AB 1234" not in held["values"] and "AB1234" not in held["values"]
    assert held["log"][-1] == {
        "kind": "plate", "at": held["log"][-1]["at"], "passType": None,
        "state": "valid", "tone": "green",
    }  # fmt: skip
    assert "Kennzeichen prüfen" in scanner.page.inner_text("#log-rows")


def test_the_plate_form_and_verdict_reflow_at_320px(scanner: Scanner, site: Site) -> None:
    paired(scanner, site)
    scanner.page.set_viewport_size(NARROW)
    assert_reflows(scanner, "plate form")
    verdict = check_plate(scanner, PLATE)
    assert verdict["title"] == "GÜLTIG"
    assert_reflows(scanner, "plate verdict")
    scanner.check_page("scanner-plate-verdict-320px")


@pytest.mark.parametrize("locale", ["en-GB"])
def test_an_english_speaking_officer_gets_the_plate_verdict_in_english(
    browser: Any,
    site: Site,
    locale: str,
) -> None:
    english = Scanner(browser, site, locale=locale)
    try:
        paired(english, site)
        verdict = check_plate(english, "D-XY 9")
        assert (verdict["tone"], verdict["title"]) == ("red", "NO PERMIT")
        assert "no permit" in verdict["message"]
        english.check_page("scanner-plate-unknown-en")
    finally:
        english.close()
