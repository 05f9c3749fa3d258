"""What `pip install wallet[server]` brings is enough to run every module of the service.

A fresh clone's `scripts/serve` installs the server extras only, while the test
suite runs on the dev extras: a library that only a dev tool pulled in (as
schemathesis once pulled in `requests`, which Authlib's OIDC client needs) passed
every test and broke the service on a new machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.factories import dev_instance_env

# Libraries that another library imports only when it happens to be installed.
OPTIONAL = {"pygments": "mako (alembic's templates) highlights with it when present"}

_IMPORTED = """
import importlib, json, pkgutil, sys
before = set(sys.modules)  # what the interpreter loads at start (.pth hooks) is not ours
import wallet
for module in pkgutil.walk_packages(wallet.__path__, "wallet."):
    importlib.import_module(module.name)
third_party = set()
for name, module in list(sys.modules.items()):
    where = getattr(module, "__file__", None) or ""
    if "site-packages" in where and not name.startswith("wallet") and name not in before:
        third_party.add(name.partition(".")[0])
print(json.dumps(sorted(third_party)))
"""


def _imported_by_wallet(tmp_path: Path) -> list[str]:
    """Top-level names of every library loaded once all of wallet is imported."""
    env = dev_instance_env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED], env=env, capture_output=True, text=True, check=True
    )
    return list(json.loads(done.stdout))


def _installed_closure(name: str, extras: frozenset[str]) -> set[str]:
    """Every distribution `pip install name[extras]` installs, from installed metadata."""
    seen: set[str] = set()
    pending = [(canonicalize_name(name), extras)]
    while pending:
        current, wanted = pending.pop()
        key = f"{current}[{','.join(sorted(wanted))}]"
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.requires(current) or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in ("", *wanted)]
            if requirement.marker is None or any(
                requirement.marker.evaluate(environment) for environment in environments
            ):
                pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return {key.partition("[")[0] for key in seen}


def test_the_server_extras_install_every_library_the_service_imports(tmp_path: Path) -> None:
    installed = _installed_closure("wallet", frozenset({"server"}))
    providers = metadata.packages_distributions()
    missing = {}
    for module in set(_imported_by_wallet(tmp_path)) - OPTIONAL.keys():
        distributions = {canonicalize_name(d) for d in providers.get(module, [])}
        if distributions and not distributions & installed:
            missing[module] = sorted(distributions)
    assert not missing, (
        f"wallet imports these, but `pip install wallet[server]` does not install them: "
        f"{missing}; add them to [project.optional-dependencies] server in pyproject.toml"
    )
