"""``wallet-verify``: the staff device's command, offline except for ``sync``.

State lives in ``WALLET_VERIFIER_DIR`` (default ``$XDG_DATA_HOME/wallet-verify``):
``bundle.jwt`` (the synced bundle), ``root-key.pem`` (the pinned trust root,
copied at the first sync) and ``state.json`` (the highest bundle version seen,
so a rollback is refused even if the bundle file is replaced by hand).

Languages: a verdict is printed in one language (``--lang``, default
``WALLET_VERIFIER_LANG``, else German); the command's own messages (errors, sync
reports) are printed twice, German first, then English, because staff and the
IT department both read them. ``--json`` carries both languages.

Exit status (also in ``--help``): see :data:`EXIT_CODES` and the ``EXIT_*`` constants.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import click

from wallet.bundle import MAX_BUNDLE_LENGTH, TrustBundle, verify_bundle
from wallet.cli.context import WalletGroup
from wallet.errors import QRTextError, WalletError
from wallet.files import write_atomically
from wallet.formats.qrimage import read_qr_image
from wallet.keys import PublicKey
from wallet.verifier import MAX_INPUT_LENGTH, VerificationResult, Verifier, load_root_key

# One exit status per verdict state (wallet.verifier.STATES), so scripts and gates
# can act without parsing text. The codes are a contract: never renumber them.
EXIT_CODES = {
    "valid": 0,
    "invalid": 10,
    "revoked": 11,
    "suspended": 12,
    "expired": 13,
    "not_yet_valid": 14,
    "unknown_key": 15,
    "stale_status": 16,  # amber: the status list is out of date
    "status_unchecked": 17,  # amber: no status list for the pass
}
EXIT_SCAN_NOT_ALL_VALID = 1
EXIT_USAGE = 2
EXIT_OPERATIONAL = 3  # no usable bundle or root key, a failed sync, ...
EXIT_NO_QR_CODE = 4  # check --image: no single QR code can be read from the image
EXIT_STATUS_HELP = """\b
Exit status:
   0  valid: genuine, in date, status checked against a fresh list
   1  scan: at least one line was not valid
   2  usage error
   3  no usable bundle or trust-root key, or another operational error
   4  check --image: no (single) QR code found in the image
  10  invalid or forged        11  revoked          12  suspended
  13  expired                  14  not yet valid    15  unknown key
  16  amber: status list out of date (stale_status)
  17  amber: no status list for the pass (status_unchecked)
Amber means the status could not be checked; whether the pass type lets the
holder through anyway is "admit" in --json output and the "Accept" line."""
# A symbol and a word per state: the word keeps the verdict readable without colour.
SYMBOLS = {
    "valid": ("✔", "green"),
    "invalid": ("✘", "red"),
    "revoked": ("⛔", "red"),
    "suspended": ("⏸", "yellow"),
    "expired": ("⌛", "red"),
    "not_yet_valid": ("⏳", "yellow"),
    "unknown_key": ("?", "red"),
    "stale_status": ("⚠", "yellow"),
    "status_unchecked": ("⚠", "yellow"),
}
STATE_WORDS = {
    "valid": ("GÜLTIG", "VALID"),
    "invalid": ("UNGÜLTIG", "INVALID"),
    "revoked": ("WIDERRUFEN", "REVOKED"),
    "suspended": ("GESPERRT", "SUSPENDED"),
    "expired": ("ABGELAUFEN", "EXPIRED"),
    "not_yet_valid": ("NOCH NICHT GÜLTIG", "NOT YET VALID"),
    "unknown_key": ("UNBEKANNT", "UNKNOWN KEY"),
    "stale_status": ("STATUS VERALTET", "STATUS OUT OF DATE"),
    "status_unchecked": ("STATUS UNGEPRÜFT", "STATUS NOT CHECKED"),
}
# Errors from the layers below carry English messages; staff get a German line first.
GERMAN_ERRORS = {
    "bundle_invalid": "Das Prüfpaket (Schlüssel und Sperrlisten) ist nicht verwendbar.",
    "bundle_expired": "Das Prüfpaket ist abgelaufen: bitte `wallet-verify sync` ausführen.",
    "bundle_rollback": "Das Prüfpaket ist älter als das gespeicherte und wird abgelehnt.",
}
GERMAN_FALLBACK = "Der Befehl ist fehlgeschlagen (Einzelheiten in der nächsten Zeile)."
MAX_IMAGE_FILE = 20 * 1024 * 1024
DOWNLOAD_TIMEOUT = 30
# A scanner line is read at most this far: room for the longest input a pass can
# be (in UTF-8) plus padding. A longer line is skipped in chunks, never held whole.
MAX_SCAN_LINE = 4 * MAX_INPUT_LENGTH + 1024
_SKIP_CHUNK = 64 * 1024


def _default_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wallet-verify"


@dataclass
class Device:
    """Where this device keeps its bundle and pinned root, and how it reports."""

    folder: Path
    bundle_override: Path | None
    root_override: Path | None
    lang: str

    @property
    def bundle_path(self) -> Path:
        return self.bundle_override or self.folder / "bundle.jwt"

    @property
    def pinned_root_path(self) -> Path:
        return self.folder / "root-key.pem"

    @property
    def state_path(self) -> Path:
        return self.folder / "state.json"

    def root_key(self) -> PublicKey:
        path = self.root_override or self.pinned_root_path
        if not path.is_file():
            fail(
                "Noch kein Wurzelschlüssel hinterlegt: `wallet-verify sync QUELLE "
                "--root-key DATEI` mit dem Schlüssel der städtischen IT ausführen.",
                "no trust-root key is pinned yet: run `wallet-verify sync SOURCE --root-key FILE` "
                "with the root key you received from the city's IT department",
            )
        return load_root_key(path)

    def verifier(self) -> Verifier:
        if not self.bundle_path.is_file():
            fail(
                f"Kein Prüfpaket unter {self.bundle_path}: zuerst `wallet-verify sync QUELLE` "
                "ausführen.",
                f"no bundle at {self.bundle_path}: run `wallet-verify sync SOURCE` first",
            )
        return Verifier.load(self.bundle_path, root_key=self.root_key())

    def held_version(self) -> int | None:
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        version = raw.get("version") if isinstance(raw, dict) else None
        return version if isinstance(version, int) and not isinstance(version, bool) else None


def say_error(de: str, en: str) -> None:
    """An error in both languages, German first."""
    click.echo(f"Fehler: {de}", err=True)
    click.echo(f"error: {en}", err=True)


def fail(de: str, en: str, code: int = EXIT_OPERATIONAL) -> NoReturn:
    say_error(de, en)
    sys.exit(code)


def report(de: str, en: str) -> None:
    """A notice in both languages, German first."""
    click.echo(de)
    click.echo(en)


def _fetch(source: str) -> bytes:
    """Read a bundle from a URL or a file, never more than the bundle cap."""
    if source.startswith(("http://", "https://")):
        request = urllib.request.Request(source, headers={"Accept": "application/jwt"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:  # noqa: S310
                data: bytes = response.read(MAX_BUNDLE_LENGTH + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            fail(
                f"Das Prüfpaket kann nicht von {source} geladen werden; "
                "das bisherige bleibt in Gebrauch.",
                f"cannot download the bundle from {source}: {exc}; the old bundle is kept",
            )
    else:
        try:
            with open(source, "rb") as handle:
                data = handle.read(MAX_BUNDLE_LENGTH + 1)
        except OSError as exc:
            fail(
                f"{source} kann nicht gelesen werden; das bisherige Prüfpaket bleibt in Gebrauch.",
                f"cannot read {source}: {exc.strerror}; the old bundle is kept",
            )
    if len(data) > MAX_BUNDLE_LENGTH:
        fail(
            "Die Datei ist größer als jedes echte Prüfpaket; das bisherige bleibt in Gebrauch.",
            "the bundle is larger than any genuine bundle; the old bundle is kept",
        )
    return data


def _print_result(
    result: VerificationResult, device: Device, verifier: Verifier, *, as_json: bool
) -> None:
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    symbol, colour = SYMBOLS.get(result.state, ("✘", "red"))
    de, en = STATE_WORDS.get(result.state, ("UNGÜLTIG", "INVALID"))
    word = en if device.lang == "en" else de
    line = click.style(f"{symbol} {word}", fg=colour, bold=True)
    reason = "" if result.reason == "ok" else click.style(f"  [{result.reason}]", dim=True)
    click.echo(f"{line}  {result.message(device.lang)}{reason}")
    if result.unchecked:
        # Status unchecked is never "valid": say plainly whether this pass type admits it.
        de = "Annehmen: ja (Regel dieser Ausweisart)" if result.admit else "Annehmen: nein"
        en = "Accept: yes (this pass type's rule)" if result.admit else "Accept: no"
        click.echo(f"   {en if device.lang == 'en' else de}")
    holder = result.claims.get("holder", {})
    if holder:
        display = verifier.bundle.pass_types.get(result.claims.get("pass_type", ""), {})
        labels = {
            f.get("name"): f.get("label", {}).get(device.lang)
            for f in display.get("fields", [])
            if isinstance(f, dict)
        }
        type_label = display.get("label", {}).get(device.lang) or result.claims.get("pass_type")
        fields = "  ".join(f"{labels.get(k) or k}: {v}" for k, v in holder.items())
        until = result.claims.get("expires_at", "")[:10]
        word = "gültig bis" if device.lang == "de" else "valid until"
        click.echo(f"   {type_label}  {fields}  ({word} {until})")


class VerifyGroup(WalletGroup):
    """Errors in both languages, German first; then the operational exit status."""

    error_exit_code = EXIT_OPERATIONAL

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return click.Group.invoke(self, ctx)
        except WalletError as exc:
            say_error(GERMAN_ERRORS.get(exc.code, GERMAN_FALLBACK), exc.message)
            ctx.exit(self.error_exit_code)
        except KeyboardInterrupt:
            click.echo("abgebrochen / interrupted", err=True)
            ctx.exit(130)


@click.group(cls=VerifyGroup, epilog=EXIT_STATUS_HELP)
@click.option(
    "--bundle",
    "bundle_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check against this bundle file instead of the synced one.",
)
@click.option(
    "--root-key",
    "root_key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trust-root public key (PEM) to check the bundle with.",
)
@click.option(
    "--lang",
    type=click.Choice(["de", "en"]),
    default=None,
    help="Language of the verdicts (default: WALLET_VERIFIER_LANG or de).",
)
@click.pass_context
def cli(
    ctx: click.Context, bundle_path: Path | None, root_key: Path | None, lang: str | None
) -> None:
    """Check city passes offline. Sync the trust bundle whenever you are online.

    Verdicts are printed in the --lang language; errors and sync reports in
    German, then English.
    """
    folder = Path(os.environ.get("WALLET_VERIFIER_DIR") or _default_dir())
    lang = lang or os.environ.get("WALLET_VERIFIER_LANG", "de")
    ctx.obj = Device(folder, bundle_path, root_key, "en" if lang == "en" else "de")


@cli.command()
@click.argument("source")
@click.option(
    "--root-key",
    "root_key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trust-root public key (PEM) to pin at the first sync.",
)
@click.pass_obj
def sync(device: Device, source: str, root_key: Path | None) -> None:
    """Fetch a bundle (URL or file), verify it, then swap it in atomically."""
    if root_key is not None:
        device.root_override = root_key
    if device.bundle_override is not None:
        raise click.UsageError(
            "sync schreibt das eigene Prüfpaket des Geräts: --bundle weglassen / "
            "sync writes the device's own bundle; drop --bundle"
        )
    if device.root_override is not None:
        root_pem = device.root_override.read_bytes() if device.root_override.is_file() else b""
        if not root_pem:
            fail(
                f"Der Wurzelschlüssel {device.root_override} kann nicht gelesen werden.",
                f"cannot read the root key {device.root_override}",
            )
        root = load_root_key(device.root_override)
        if device.pinned_root_path.is_file():
            pinned = load_root_key(device.pinned_root_path)
            if pinned.kid != root.kid:
                fail(
                    f"Der angegebene Wurzelschlüssel ({root.kid}) weicht vom hinterlegten "
                    f"({pinned.kid}) ab. Nur wenn die Stadt ihn wirklich ersetzt hat: "
                    f"{device.pinned_root_path} löschen und erneut synchronisieren.",
                    f"the given root key ({root.kid}) differs from the pinned one ({pinned.kid}). "
                    f"If the city really replaced its trust root, delete "
                    f"{device.pinned_root_path} and sync again with the new key.",
                )
    else:
        root = device.root_key()
    data = _fetch(source)
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        fail(
            "Die geladene Datei ist kein Prüfpaket; das bisherige bleibt in Gebrauch.",
            "the downloaded file is not a bundle; the old bundle is kept",
        )
    held = device.held_version()
    bundle: TrustBundle = verify_bundle(token, root, now=datetime.now(UTC), held_version=held)
    Verifier(bundle)  # every status list must load before the swap
    if not device.pinned_root_path.is_file():
        write_atomically(device.pinned_root_path, root.pem())
        report(f"Wurzelschlüssel {root.kid} hinterlegt.", f"pinned trust-root key {root.kid}")
    if held == bundle.version:
        report(
            f"Prüfpaket Version {bundle.version} ist bereits das neueste; nichts geändert.",
            f"bundle version {bundle.version} is already the newest; nothing changed",
        )
        return
    write_atomically(device.bundle_path, token.encode("ascii") + b"\n")
    write_atomically(device.state_path, json.dumps({"version": bundle.version}).encode())
    until = f"{bundle.expires_at:%Y-%m-%d %H:%M} UTC"
    report(
        f"Prüfpaket Version {bundle.version} von {bundle.issuer} übernommen: "
        f"{len(bundle.keys)} Schlüssel, {len(bundle.status_lists)} Sperrlisten, gültig bis {until}",
        f"synced bundle version {bundle.version} from {bundle.issuer}: {len(bundle.keys)} keys, "
        f"{len(bundle.status_lists)} status lists, valid until {until}",
    )


@cli.command(epilog=EXIT_STATUS_HELP)
@click.argument("token", required=False)
@click.option(
    "--image",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the QR code from a photo or screenshot instead.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def check(device: Device, token: str | None, image: Path | None, as_json: bool) -> None:
    """Check one pass: its QR text or compact JWS, or a photo of its QR code."""
    if (token is None) == (image is None):
        raise click.UsageError(
            "entweder TOKEN oder --image DATEI angeben / give either a TOKEN or --image FILE"
        )
    verifier = device.verifier()
    text = _read_image(image) if image is not None else str(token)
    result = verifier.check(text.strip())  # copy-paste brings spaces and line breaks
    _print_result(result, device, verifier, as_json=as_json)
    sys.exit(EXIT_CODES.get(result.state, EXIT_CODES["invalid"]))


def _read_image(image: Path) -> str:
    """The QR text in a photo; a distinct exit status when there is none to read."""
    try:
        with open(image, "rb") as handle:
            data = handle.read(MAX_IMAGE_FILE + 1)
    except OSError as exc:
        fail(
            f"{image} kann nicht gelesen werden.",
            f"cannot read {image}: {exc.strerror}",
            EXIT_NO_QR_CODE,
        )
    try:
        return read_qr_image(data)
    except QRTextError as exc:
        fail(
            f"Aus {image} lässt sich kein einzelner QR-Code lesen.",
            f"{image}: {exc.message}",
            EXIT_NO_QR_CODE,
        )


def scanned_lines(stream: BinaryIO) -> Iterator[bytes | None]:
    """Each line a scanner typed, or None for a line too long to be a pass.

    A line is never read past :data:`MAX_SCAN_LINE` bytes: the rest of an
    over-long one is read in small chunks and dropped, so memory stays flat
    whatever arrives on stdin.
    """
    while True:
        line = stream.readline(MAX_SCAN_LINE + 1)
        if not line:
            return
        if len(line) <= MAX_SCAN_LINE or line.endswith(b"\n"):
            yield line
            continue
        while True:
            rest = stream.readline(_SKIP_CHUNK)
            if not rest or rest.endswith(b"\n"):
                break
        yield None


@cli.command(epilog=EXIT_STATUS_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON result per line.")
@click.pass_obj
def scan(device: Device, as_json: bool) -> None:
    """Read one code per line from a USB or Bluetooth scanner and judge each.

    Spaces around a code are ignored; a line longer than any pass is judged
    invalid (too_long) without being read whole. Exits 0 only if every line
    was valid.
    """
    verifier = device.verifier()
    all_valid = True
    stream = sys.stdin.buffer  # bytes: a scanner may type anything, even invalid UTF-8
    if stream.isatty() and not as_json:
        prompt = "Bereit: bitte scannen" if device.lang == "de" else "Ready: scan a pass"
        click.echo(f"{prompt} (Ctrl-D)", err=True)
    for raw in scanned_lines(stream):
        if raw is None:
            detail = f"the line is longer than {MAX_SCAN_LINE} bytes"
            result = VerificationResult.of("invalid", "too_long", detail=detail)
        else:
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            result = verifier.check(text)
        all_valid = all_valid and result.valid
        _print_result(result, device, verifier, as_json=as_json)
    sys.exit(0 if all_valid else EXIT_SCAN_NOT_ALL_VALID)


@cli.command()
@click.pass_obj
def info(device: Device) -> None:
    """Show the held bundle: issuer, version, validity, keys and status lists."""
    verifier = device.verifier()
    bundle = verifier.bundle
    labels = _INFO_LABELS["en" if device.lang == "en" else "de"]
    width = max(len(label) for label in labels.values()) + 2
    for name, value in (
        ("issuer", bundle.issuer),
        ("version", str(bundle.version)),
        ("issued", f"{bundle.issued_at:%Y-%m-%d %H:%M} UTC"),
        ("expires", f"{bundle.expires_at:%Y-%m-%d %H:%M} UTC"),
    ):
        click.echo(f"{labels[name] + ':':{width}}{value}")
    for key in bundle.keys:
        types = ",".join(sorted(key.info.pass_types))
        value = f"{key.kid} {key.info.alg} {key.info.state.value} ({types})"
        click.echo(f"{labels['key'] + ':':{width}}{value}")
    for uri in bundle.status_lists:
        click.echo(f"{labels['status'] + ':':{width}}{uri}")


# Labels of `info` in the device's language (--lang); the values stay as they are.
_INFO_LABELS = {
    "de": {
        "issuer": "Aussteller",
        "version": "Version",
        "issued": "erstellt",
        "expires": "gültig bis",
        "key": "Schlüssel",
        "status": "Sperrliste",
    },
    "en": {
        "issuer": "issuer",
        "version": "version",
        "issued": "issued",
        "expires": "expires",
        "key": "key",
        "status": "status",
    },
}


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=argv, prog_name="wallet-verify")
