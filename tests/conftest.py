"""Shared fixtures, and a guard that keeps every test off the network."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.database import db, postgres_url, sqlite_template  # noqa: F401 - fixtures
from tests.factories import City
from tests.logprivacy import (  # noqa: F401 - issue 12
    _log_privacy_capture,
    pytest_sessionfinish,
    pytest_testnodedown,
)


def _is_loopback(address: Any) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:
        return True  # AF_UNIX paths and the like never leave the machine
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _own_logging_setup() -> Iterator[None]:
    """A command run in-process (`wallet worker` sets up JSON logging on the root
    logger) must not change how the tests after it log."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)  # a no-op for those still there
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _no_outbound_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any connection that is not to loopback: tests never reach the internet."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            raise AssertionError(f"test tried to connect to {address!r}; only loopback is allowed")
        return real_connect(self, address)

    def guarded_ex(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            raise AssertionError(f"test tried to connect to {address!r}; only loopback is allowed")
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_ex)
    yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the clock-ahead run, skip tests whose other party keeps the machine's time."""
    if not os.environ.get("WALLET_TEST_CLOCK_AHEAD", "").strip():
        return
    skip = pytest.mark.skip(reason="reads a clock the clock-ahead run cannot move")
    for item in items:
        if item.get_closest_marker("real_clock"):
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _clock_ahead() -> Iterator[None]:
    """WALLET_TEST_CLOCK_AHEAD=DAYS moves the wall clock that far ahead for the whole run.

    Time is a parameter everywhere; a test that passes only on today's date
    (a fixed NOW meeting code that reads the real clock) fails this run.
    Monotonic clocks are left alone, so timeouts and sleeps behave.
    """
    days = os.environ.get("WALLET_TEST_CLOCK_AHEAD", "").strip()
    if not days:
        yield
        return
    import time_machine

    with time_machine.travel(datetime.now(UTC) + timedelta(days=int(days)), tick=True):
        yield


@pytest.fixture
def city() -> City:
    return City()


@pytest.fixture
def services(tmp_path: Any) -> Any:
    """Services over a fresh keys folder with a trust root and one pass key (dev mode)."""
    from tests.factories import dev_services, dev_settings

    settings = dev_settings(tmp_path, public_url="https://pass.stadt-musterstadt.de")
    return dev_services(settings)
