"""``wallet demo``: the main job of this stage, end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from wallet.cli import cli
from wallet.formats.qrimage import read_qr_image
from wallet.verifier import Verifier

FILES = {"bundle.jwt", "root-key.pem"} | {
    f"{t}.{ext}" for t in ("library", "parking") for ext in ("txt", "jws", "png", "svg")
}


def test_demo_writes_every_artefact_and_verifies_them(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = runner.invoke(cli, ["demo", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == FILES
    assert result.output.count("✔") == 2 and "valid" in result.output
    verifier = Verifier.load(out / "bundle.jwt", root_key=out / "root-key.pem")
    for type_id in ("library", "parking"):
        qr_text = (out / f"{type_id}.txt").read_text().strip()
        jws = (out / f"{type_id}.jws").read_text().strip()
        assert read_qr_image((out / f"{type_id}.png").read_bytes()) == qr_text
        assert verifier.check(qr_text).valid and verifier.check(jws).valid
        assert "<title>" in (out / f"{type_id}.svg").read_text()
    # A second run reuses the keys instead of creating new ones.
    keys_before = sorted((tmp_path / "keys").iterdir())
    assert runner.invoke(cli, ["demo", "--out", str(out)], env=env).exit_code == 0
    assert sorted((tmp_path / "keys").iterdir()) == keys_before


def test_demo_keys_are_encrypted_when_a_passphrase_is_set(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    assert runner.invoke(cli, ["demo", "--out", str(tmp_path / "o")], env=env).exit_code == 0
    pems = list((tmp_path / "keys").glob("*.key.pem"))
    assert len(pems) == 2
    assert all(p.read_bytes().startswith(b"-----BEGIN ENCRYPTED") for p in pems)


def test_console_scripts_run_from_the_installed_package(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The entry points of pyproject.toml work as a staff member would call them."""
    bindir = Path(sys.executable).parent
    full_env = {**os.environ, **env}
    demo = subprocess.run(
        [bindir / "wallet", "demo", "--out", tmp_path / "out"],
        env=full_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    out = tmp_path / "out"
    check = subprocess.run(
        [bindir / "wallet-verify", "--bundle", out / "bundle.jwt", "--root-key",
         out / "root-key.pem", "check", "--image", out / "parking.png"],
        env=full_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert "GÜLTIG" in check.stdout and "D-AB 1234" in check.stdout
