"""Writing files whole or not at all (a crash never leaves half a key or bundle),
and private ones that never overwrite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO

from wallet.errors import InputError


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write to a temporary file beside ``path``, sync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_private(path: Path, *, field: str) -> IO[bytes]:
    """A new file only its owner can read (it will hold claim links); never overwrites.

    :raises InputError: the file exists or cannot be created (``field`` named).
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError(f"{path} exists already; choose another file", field=field) from None
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}", field=field) from exc
    return os.fdopen(descriptor, "wb")
