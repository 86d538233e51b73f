"""Data files a clinic keeps (recordings, history, spool, exports): created readable by the owner only,
and CSV cells that a spreadsheet will not run as formulas."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

PRIVATE_MODE = 0o600
# A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice, Sheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 when missing (before a library such as SQLite opens it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def open_private(path: Path, mode: str = "xb", **kw: Any) -> IO[Any]:
    """``open(path, mode)`` creating a missing file with mode 0600 (whatever the umask allows less)."""
    return open(path, mode, opener=lambda p, flags: os.open(p, flags, PRIVATE_MODE), **kw)


def csv_safe(value: object) -> object:
    """A text cell that a spreadsheet would evaluate gets a leading ``'`` (OWASP CSV injection); numbers
    (including negative ones) stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
