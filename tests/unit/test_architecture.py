"""The verifier stays light enough for a staff device."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("flask", "sqlalchemy", "click", "qrcode", "PIL", "zxingcpp")


def test_verifier_imports_without_web_database_terminal_or_image_libraries() -> None:
    code = (
        "import sys, wallet.verifier\n"
        f"loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""
