"""`openssl cms -verify`, the independent judge of .pkpass signatures in the tests."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

OPENSSL = Path("/usr/bin/openssl")


def openssl_verify(
    folder: Path, signature: bytes, content: bytes, root: Path, *, at: datetime
) -> subprocess.CompletedProcess[str]:
    """Verify a detached DER signature over ``content`` against ``root``, as of ``at``."""
    (folder / "signature").write_bytes(signature)
    (folder / "manifest.json").write_bytes(content)
    return subprocess.run(
        [
            str(OPENSSL), "cms", "-verify", "-binary", "-inform", "DER",
            "-in", str(folder / "signature"), "-content", str(folder / "manifest.json"),
            "-CAfile", str(root), "-purpose", "any",
            "-attime", str(int(at.timestamp())), "-out", str(folder / "verified"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
