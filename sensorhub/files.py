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


def make_private(path: Path) -> Path:
    """Before a library (numpy, pyarrow, ``write_text``) writes ``path``: create it 0600, or make an
    existing file 0600 (rewriting a file keeps its mode)."""
    private_file(path)
    os.chmod(path, PRIVATE_MODE)
    return path


def open_private(path: Path, mode: str = "xb", **kw: Any) -> IO[Any]:
    """``open(path, mode)`` creating a missing file with mode 0600 (whatever the umask allows less)."""
    return open(path, mode, opener=lambda p, flags: os.open(p, flags, PRIVATE_MODE), **kw)


def csv_safe(text: str) -> str:
    """A text cell that a spreadsheet would evaluate gets a leading ``'`` (OWASP CSV injection); a plain
    number (``-3.5``, ``+1e3``) stays a number."""
    if text.startswith(FORMULA_PREFIXES):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text
