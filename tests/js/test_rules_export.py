"""The scanner's rules file is the Python verifier's vocabulary, exported, never hand-edited."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts/export_verifier_rules.py"


def test_the_committed_rules_file_is_what_the_python_verifier_says() -> None:
    spec = importlib.util.spec_from_file_location("export_verifier_rules", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = module.TARGET.read_text(encoding="utf-8")
    assert committed == module.render(), "run: python scripts/export_verifier_rules.py"
    assert '"revoked": "revoked"' in committed and "Ausweis gültig." in committed
