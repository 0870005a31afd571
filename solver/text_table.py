"""Aligned text tables for fit's human output: the one place every command's tables come from.

Two layouts, both kept byte-for-byte as users have seen them:

- ``rows_table``: records (dicts of equal keys) as pandas prints a frame, every column
  right-aligned, floats of a column to one precision. Hardware, memory, test, calibrate,
  tune and whatif use it.
- ``format_table``: headers, a rule of dashes, then rows; numbers right-aligned, text
  left-aligned. ``fit inspect`` uses it.

``terminal_safe`` escapes what a terminal would act on instead of print. Text from a model
file (``general.name``, tensor names) or a scenario is untrusted: an ``ESC ]0;...`` sequence
sets the window title, ``ESC [2J`` clears the screen. Both tables apply it to every text cell;
renderers apply it to any other untrusted text they print.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

NO_ROWS = "(none)"

# C0 and C1 controls, DEL (C1's 0x9b is a one-byte CSI on some terminals), line and paragraph
# separators, and the bidirectional overrides and isolates that reorder what follows them.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return repr(char)[1:-1] if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def terminal_safe(text: str) -> str:
    """``text`` with every control character written as a Python escape (``\\x1b``,
    ``\\n``, ``\\u202e``); text without one comes back unchanged."""
    return _UNSAFE.sub(_escape, text)


def rows_table(rows: Sequence[Mapping[str, object]]) -> str:
    """Rows of equal keys as an aligned text table; ``(none)`` for no rows. Text cells and
    column names are ``terminal_safe``."""
    import pandas as pd  # imported here: a second of start-up the commands without tables skip

    if not rows:
        return NO_ROWS
    safe = [{_safe_cell(key): _safe_cell(value) for key, value in row.items()} for row in rows]
    return pd.DataFrame(safe).to_string(index=False)


def _safe_cell(value: object) -> object:
    return terminal_safe(value) if isinstance(value, str) else value


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned; every
    cell ``terminal_safe``."""
    headers = [terminal_safe(h) for h in headers]
    cells = [[terminal_safe(str(cell)) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    numeric = [
        bool(rows) and all(isinstance(row[i], int | float) for row in rows)
        for i in range(len(headers))
    ]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if num else cell.ljust(w)
            for cell, w, num in zip(row, widths, numeric, strict=True)
        ).rstrip()

    return [line(list(headers)), line(["-" * w for w in widths]), *(line(row) for row in cells)]
