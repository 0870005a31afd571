"""Quality figures a quantizer publishes per quant: KL divergence and perplexity tables.

``quality_rows(card)`` reads every table with a KLD or perplexity column and returns one
``QualityRow`` per data row: its first cell (the quant's label as the card writes it, e.g.
``UD-Q4_K_XL`` or ``Q4_K_M (imatrix)``) and the numbers. Matching labels to a repository's
quants is the caller's (``solver.gguf.repo.quant_label`` reads a label out of such text).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from solver.card.document import CardDocument, Table

_KLD = re.compile(r"\bKLD\b|KL[\s-]?div", re.I)
_PPL = re.compile(r"\bPPL\b|perplexity", re.I)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


class QualityRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    kld: float | None = None
    ppl: float | None = None
    row: str


def quality_rows(card: CardDocument) -> list[QualityRow]:
    return [row for table in card.tables for row in _rows(table)]


def _rows(table: Table) -> list[QualityRow]:
    kld = next((i for i, cell in enumerate(table.header) if _KLD.search(cell)), None)
    ppl = next((i for i, cell in enumerate(table.header) if _PPL.search(cell)), None)
    if kld is None and ppl is None:
        return []
    found = []
    for row in table.rows:
        figures = {"kld": _number(row, kld), "ppl": _number(row, ppl)}
        if row and row[0] and any(v is not None for v in figures.values()):
            found.append(QualityRow(label=row[0], row="| " + " | ".join(row) + " |", **figures))
    return found


def _number(row: tuple[str, ...], column: int | None) -> float | None:
    if column is None or column >= len(row):
        return None
    match = _NUMBER.search(row[column])
    return float(match.group()) if match else None
