"""Wrappings around a pass token: QR codes, wallet files and printable cards.

Submodules are imported directly (``from wallet.formats.qr import render_svg``) so
that using one format never loads the dependencies of the others.
"""
