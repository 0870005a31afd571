"""Aligned text tables for fit's human output: the one place every command's tables come from.

Two layouts, both kept byte-for-byte as users have seen them:

- ``rows_table``: records (dicts of equal keys) as pandas prints a frame, every column
  right-aligned, floats of a column to one precision. Hardware, memory, test, calibrate,
  tune and whatif use it.
- ``format_table``: headers, a rule of dashes, then rows; numbers right-aligned, text
  left-aligned. ``fit inspect`` uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

NO_ROWS = "(none)"


def rows_table(rows: Sequence[Mapping[str, object]]) -> str:
    """Rows of equal keys as an aligned text table; ``(none)`` for no rows."""
    import pandas as pd  # imported here: a second of start-up the commands without tables skip

    return pd.DataFrame(list(rows)).to_string(index=False) if rows else NO_ROWS


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
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
