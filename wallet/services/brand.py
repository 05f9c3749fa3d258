"""The platforms' "add to wallet" artwork: official files from the instance, else stand-ins.

Apple's and Google's button artwork is licensed to the issuer who downloads it
(Add to Apple Wallet Guidelines; Google Wallet brand guidelines), so the
repository cannot ship it. The city's admin puts the official files into
``<instance>/wallet-buttons/`` under the names below; until then the page shows
stand-ins drawn to the published rules, and ``wallet doctor`` says so.
"""

from __future__ import annotations

from pathlib import Path

from wallet.config import Settings

__all__ = ["BUTTON_FILES", "INSTANCE_FOLDER", "official_button", "stand_ins_in_use"]

INSTANCE_FOLDER = "wallet-buttons"
# file name -> the official artwork that belongs there
BUTTON_FILES: dict[str, str] = {
    "apple-wallet-de.svg": 'Apple\'s "Zu Apple Wallet hinzufügen" badge (German, black)',
    "apple-wallet-en.svg": 'Apple\'s "Add to Apple Wallet" badge (US/UK English, black)',
    "google-wallet-de.svg": 'Google\'s "Zu Google Wallet hinzufügen" button (German, dark)',
    "google-wallet-en.svg": 'Google\'s "Add to Google Wallet" button (English, dark)',
}


def official_button(settings: Settings, name: str) -> Path | None:
    """The official artwork the admin put into the instance for ``name``, or None
    (then the web layer serves its stand-in). Only names of :data:`BUTTON_FILES`
    are looked up: a name from a URL never becomes a path."""
    if name not in BUTTON_FILES:
        return None
    official = settings.instance_dir / INSTANCE_FOLDER / name
    return official if official.is_file() else None


def stand_ins_in_use(settings: Settings) -> list[str]:
    """The button files for which no official artwork was put into the instance folder."""
    folder = settings.instance_dir / INSTANCE_FOLDER
    return [name for name in BUTTON_FILES if not (folder / name).is_file()]
