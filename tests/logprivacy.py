"""No personal data in any log line of a test run (issue 12, section 3): a pytest plugin.

Every log record of the pytest process (INFO and up, from a root handler this plugin
adds for the session) goes to a file under the session's temporary folder, where the
servers and workers that tests start write their output too (``*.log``, ``*.out``,
``*.err`` under ``tmp_path``). When the session ends, every line of those files is
checked for

- the holder data the tests use: names, e-mail addresses, plates and card numbers,
  read from the tests' own source (dict literals and keywords such as ``"name": ...``)
  and from the files in ``tests/data``, so new test data is covered without a list to
  keep;
- the claim secrets issued in this process (recorded as they are made);
- shapes that are never fine in a log: an e-mail address, a signed token (JWS/JWT),
  a claim link with its secret, an API token, a German plate.

A finding fails the session and names the file, the line and what was found. Under
pytest-xdist every worker scans its own temporary folder (the servers its tests start
write there) with the secrets it recorded, and hands its findings to the controller
(``config.workeroutput``), which fails the run: a worker's own exit status never
reaches it. The
one-time terminal print of ``wallet setup`` (the first admin's password and API token,
between its two rulers) is output for the person installing, not a log: it is skipped.
"""

from __future__ import annotations

import ast
import csv
import io
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
LOG_NAME = "log-privacy-pytest.log"
SCANNED = ("*.log", "*.out", "*.err")
_HOLDER_KEYS = frozenset({"name", "email", "plate", "card_number", "holder_name"})
# As keyword arguments "name" is too many other things (a button's, a token's).
_HOLDER_KEYWORDS = _HOLDER_KEYS - {"name"}
_CSV_COLUMNS = re.compile(r"name|e-?mail|kennzeichen|plate|ausweisnummer", re.IGNORECASE)
_RULER = "=" * 72  # wallet setup's one-time print stands between two of these
_WORKER_OUTPUT = "log_privacy_leaks"  # the key of a worker's findings in its workeroutput

SHAPES = {
    "an e-mail address": re.compile(
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.(?!(png|jpe?g|gif|svg|webp)\b)[A-Za-z]{2,}"
    ),
    "a signed token (JWS)": re.compile(
        r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
    ),
    "a claim link with its secret": re.compile(r"/p/[A-Za-z0-9_-]{16,}"),
    "an API token": re.compile(r"\bwpt_[A-Za-z0-9_-]{16,}"),
    "a device's push token": re.compile(r"/device/[0-9A-Fa-f]{32,}"),
    "a plate": re.compile(r"\b[A-Z\u00c4\u00d6\u00dc]{1,3}-[A-Z]{1,2} [0-9]{1,4}[EH]?\b"),
}


@dataclass(frozen=True)
class Leak:
    where: str
    line_number: int
    what: str
    line: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line_number}: {self.what}: {self.line[:300]}"


def _literal_values(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        for element in node.elts:
            yield from _literal_values(element)


def _from_source(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in _HOLDER_KEYS:
                    yield from _literal_values(value)
        elif isinstance(node, ast.keyword) and node.arg in _HOLDER_KEYWORDS:
            yield from _literal_values(node.value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield from (m[0] for m in SHAPES["an e-mail address"].finditer(node.value))


def _from_csv(path: Path) -> Iterator[str]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    dialect = csv.Sniffer().sniff(text[:2000], delimiters=";,\t")
    rows = list(csv.reader(io.StringIO(text), dialect))
    if not rows:
        return
    wanted = [i for i, title in enumerate(rows[0]) if _CSV_COLUMNS.search(title)]
    for row in rows[1:]:
        for i in wanted:
            if i < len(row):
                yield row[i]
                yield from row[i].split(",")  # "Müller, Jürgen": each part alone too


def _personal(value: str) -> bool:
    """Worth looking for: long enough not to be a word of every log line, and written
    like a name, a plate, a number or an address (not a lower-case label like "wallet")."""
    value = value.strip()
    if value.isdigit():
        return len(value) >= 8  # a card number, not a port or a count
    return len(value) >= 5 and (
        any(c.isupper() for c in value) or any(c.isdigit() for c in value) or "@" in value
    )


def forbidden_values(tests: Path = TESTS) -> frozenset[str]:
    """Holder data the test suite uses, derived from its source and data files."""
    found: set[str] = set()
    for path in tests.rglob("*.py"):
        found.update(_from_source(path))
    for path in (tests / "data").glob("*.csv"):
        found.update(_from_csv(path))
    return frozenset(v.strip() for v in found if _personal(v))


def find_leaks(lines: Iterable[str], forbidden: Iterable[str], *, where: str = "log") -> list[Leak]:
    """Every line holding a forbidden value or a forbidden shape."""
    needles = sorted(set(forbidden), key=len, reverse=True)
    leaks = []
    in_setup_print = False
    for number, line in enumerate(lines, start=1):
        if line.strip() == _RULER:
            in_setup_print = not in_setup_print
            continue
        if in_setup_print:
            continue
        for value in needles:
            if value in line:
                leaks.append(Leak(where, number, f"test data {value!r}", line))
                break
        else:
            for what, shape in SHAPES.items():
                if shape.search(line):
                    leaks.append(Leak(where, number, what, line))
                    break
    return leaks


class _Recorder:
    """The session's folder, the claim secrets made in this process (known exactly), and
    on an xdist controller the findings its workers reported."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.folder: Path | None = None
        self.from_workers: list[str] = []


_recorder = _Recorder()


@pytest.fixture(autouse=True, scope="session")
def _log_privacy_capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every log record of the run into a file the scan reads; claim secrets recorded."""
    from wallet import logs
    from wallet.services import passes

    logs.quiet_libraries()  # as the service and the worker log (wallet.logs.configure)
    _recorder.folder = tmp_path_factory.getbasetemp()
    path = _recorder.folder / LOG_NAME
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)  # the service logs at INFO in production
    original = passes._new_claim_link

    def recording(*args: Any, **kwargs: Any) -> Any:
        secret, values = original(*args, **kwargs)
        _recorder.secrets.add(secret)
        return secret, values

    passes._new_claim_link = recording
    try:
        yield
    finally:
        passes._new_claim_link = original
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def scan_folder(folder: Path, forbidden: Iterable[str]) -> list[Leak]:
    forbidden = frozenset(forbidden)
    leaks = []
    for pattern in SCANNED:
        for path in sorted(folder.rglob(pattern)):
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                leaks += find_leaks(text.splitlines(), forbidden, where=str(path))
    return leaks


def _scan_this_process() -> list[str]:
    if _recorder.folder is None:
        return []  # no test ran here (collection only, or an xdist controller)
    leaks = scan_folder(_recorder.folder, forbidden_values() | _recorder.secrets)
    return [str(leak) for leak in leaks]


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent with -p no:xdist
def pytest_testnodedown(node: Any, error: object | None) -> None:
    """On the xdist controller: what a worker found in its own folder."""
    output = getattr(node, "workeroutput", None) or {}
    _recorder.from_workers.extend(output.get(_WORKER_OUTPUT, []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every test: the whole run's logs, checked; a finding fails the session."""
    leaks = _scan_this_process()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: only the controller can fail the run
        workeroutput[_WORKER_OUTPUT] = leaks
        return
    leaks += _recorder.from_workers
    if not leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    shown = "\n".join(f"  {leak}" for leak in leaks[:50])
    message = (
        f"personal data or secrets in {len(leaks)} log line(s) of this test run "
        f"(issue 12: no names, plates, e-mail addresses, tokens or claim secrets in logs):\n"
        f"{shown}"
    )
    if reporter is not None:
        reporter.write_sep("=", "log privacy", red=True, bold=True)
        reporter.write_line(message)
    else:
        print(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
