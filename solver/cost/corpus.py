"""The public llama.cpp speed corpus: published measurements as typed, validated rows.

In: ``data/measurements/llama_cpp_speeds.csv`` (its columns are described in
``data/measurements/README.md``). Out: ``SpeedRow`` records, one per published measurement,
each with its source, rig, model, the flags it ran with and the decode/prefill t/s it reported.

Every row is checked on load, so a bad hand edit fails loudly instead of skewing a fit: the
header must be exactly ``COLUMNS``, numbers must parse and be positive (token counts and depth
non-negative), yes/no columns must say yes or no, a row must carry a decode or a prefill speed,
``priceable`` must agree with ``catalogue_entry``, and ``split`` must be the one ``split_of``
derives from the source URL and its stratum, so no source can sit in both the training and the
test split.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from solver.datafiles import data_path
from solver.errors import BadInput

COLUMNS: tuple[str, ...] = (
    "source_url", "source_date", "split", "tool", "llama_build", "backend",
    "gpu", "gpu_published", "gpu_in_table", "gpu_count", "pcie_link",
    "cpu", "cpu_cores", "cpu_threads", "ram_type", "ram_speed_mts", "ram_channels", "ram_gb",
    "model_published", "model_size_gib", "model_params_b", "hf_model", "quant",
    "catalogue_entry", "catalogue_match", "priceable", "moe", "offload",
    "ngl", "n_cpu_moe", "override_tensor", "tensor_split", "split_mode", "flash_attn",
    "batch", "ubatch", "mmap", "threads", "cache_type_k", "cache_type_v", "other_flags",
    "flags_complete", "n_prompt", "n_gen", "depth", "decode_tps", "prefill_tps", "notes",
)  # fmt: skip

# Columns no row may leave empty: where it came from, how it was measured and on what.
REQUIRED: tuple[str, ...] = (
    "source_url", "split", "tool", "gpu", "gpu_count", "hf_model", "quant", "priceable", "moe",
    "offload", "flags_complete",
)  # fmt: skip

# The test split takes sources whose hash lands in the first TEST_BUCKETS of SPLIT_BUCKETS.
SPLIT_BUCKETS = 10
TEST_BUCKETS = 3


class Split(StrEnum):
    """Which side of the fit/evaluate divide a row's source is on."""

    TRAIN = "train"
    TEST = "test"


class Offload(StrEnum):
    """Where the weights ran: all on GPU(s), split between GPU and CPU, or CPU only."""

    FULL_GPU = "full_gpu"
    HYBRID = "hybrid"
    CPU_ONLY = "cpu_only"


class CatalogueMatch(StrEnum):
    """How the measured model relates to its fit catalogue entry (empty when it has none)."""

    NONE = ""
    EXACT = "exact"  # the same GGUF as the entry prices (size agrees within 1%)
    SAME_ARCH = "same_arch"  # same tensor shapes (a fine-tune or re-quant), sizes may differ


class Stratum(StrEnum):
    """Sources are split within their stratum, so each kind of run is in both splits.

    A source with any hybrid CPU+GPU MoE row (what most users of fit run) is drawn by its own
    hash: with the plain hash every such source had landed in train, so the test split could
    not vouch for hybrid plans."""

    PLAIN = ""
    HYBRID_MOE = "hybrid-moe "  # the salt prefixed to the URL before hashing


def split_of(source_url: str, stratum: Stratum = Stratum.PLAIN) -> Split:
    """The split of every row from ``source_url``: sha256 of the stratum's salt and the URL, its
    first 8 hex digits as an integer, modulo ``SPLIT_BUCKETS``; below ``TEST_BUCKETS`` is test
    (about 30% of the sources of each stratum)."""
    digest = hashlib.sha256((stratum.value + source_url).encode()).hexdigest()
    bucket = int(digest[:8], 16) % SPLIT_BUCKETS
    return Split.TEST if bucket < TEST_BUCKETS else Split.TRAIN


def source_strata(rows: Iterable[SpeedRow]) -> dict[str, Stratum]:
    """Each source's stratum: ``HYBRID_MOE`` when any of its rows is a hybrid MoE run."""
    strata: dict[str, Stratum] = {}
    for row in rows:
        hybrid_moe = row.offload is Offload.HYBRID and row.moe == "yes"
        if hybrid_moe or row.source_url not in strata:
            strata[row.source_url] = Stratum.HYBRID_MOE if hybrid_moe else Stratum.PLAIN
    return strata


def _yes_no(value: str | None) -> str | None:
    if value not in (None, "yes", "no"):
        raise ValueError(f"must be yes or no, not {value!r}")
    return value


class SpeedRow(BaseModel):
    """One published llama.cpp measurement. Empty CSV cells are ``None``; text is as published."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_url: str
    source_date: str | None = None
    split: Split
    tool: str
    llama_build: str | None = None
    backend: str | None = None
    gpu: str
    gpu_published: str | None = None
    gpu_in_table: str | None = None
    gpu_count: int
    pcie_link: str | None = None
    cpu: str | None = None
    cpu_cores: int | None = None
    cpu_threads: int | None = None
    ram_type: str | None = None
    ram_speed_mts: int | None = None
    ram_channels: int | None = None
    ram_gb: float | None = None
    model_published: str | None = None
    model_size_gib: float | None = None
    model_params_b: float | None = None
    hf_model: str
    quant: str
    catalogue_entry: str | None = None
    catalogue_match: CatalogueMatch = CatalogueMatch.NONE
    priceable: str
    moe: str
    offload: Offload
    ngl: int | None = None
    n_cpu_moe: int | None = None
    override_tensor: str | None = None
    tensor_split: str | None = None
    split_mode: str | None = None
    flash_attn: str | None = None
    batch: int | None = None
    ubatch: int | None = None
    mmap: int | None = None
    threads: int | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    other_flags: str | None = None
    flags_complete: str
    n_prompt: int | None = None
    n_gen: int | None = None
    depth: int | None = None
    decode_tps: float | None = None
    prefill_tps: float | None = None
    notes: str | None = None

    _check_yes_no = field_validator(
        "gpu_in_table", "priceable", "moe", "flags_complete", mode="after"
    )(_yes_no)

    @field_validator(
        "gpu_count", "cpu_cores", "cpu_threads", "ram_speed_mts", "ram_channels", "ram_gb",
        "model_size_gib", "model_params_b", "batch", "ubatch", "threads", "decode_tps",
        "prefill_tps", mode="after",
    )  # fmt: skip
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(f"must be positive, not {value}")
        return value

    @field_validator("n_cpu_moe", "n_prompt", "n_gen", "depth", "mmap", mode="after")
    @classmethod
    def _not_negative(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError(f"must not be negative, not {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SpeedRow:
        if self.decode_tps is None and self.prefill_tps is None:
            raise ValueError("neither decode_tps nor prefill_tps is given")
        if (self.priceable == "yes") != bool(self.catalogue_entry):
            raise ValueError("priceable must be yes exactly when catalogue_entry is given")
        if bool(self.catalogue_entry) != (self.catalogue_match is not CatalogueMatch.NONE):
            raise ValueError("catalogue_match must be given exactly when catalogue_entry is")
        return self


def corpus_path() -> Path:
    """Where the committed corpus lives."""
    return data_path("measurements", "llama_cpp_speeds.csv")


def _parse_row(line: int, cells: dict[str, str]) -> SpeedRow:
    """One CSV record as a ``SpeedRow``; ``BadInput`` names the line and what is wrong."""
    missing = [name for name in REQUIRED if not cells[name]]
    if missing:
        raise BadInput(f"speed corpus line {line}: empty required column(s) {', '.join(missing)}")
    values = {name: (cell or None) for name, cell in cells.items()}
    values["catalogue_match"] = cells["catalogue_match"]
    try:
        return SpeedRow.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "row"
        raise BadInput(f"speed corpus line {line}: {where}: {first['msg']}") from err


def load_corpus(path: Path | None = None) -> tuple[SpeedRow, ...]:
    """Every row of the corpus at ``path`` (default: the committed one), validated."""
    path = path or corpus_path()
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise BadInput(f"{path}: header is not the corpus columns (see README.md)")
        # line 1 is the header; DictReader's line_num would count embedded newlines too
        rows = tuple(_parse_row(line, cells) for line, cells in enumerate(reader, start=2))
    _check_splits(rows)
    return rows


def _check_splits(rows: tuple[SpeedRow, ...]) -> None:
    """Every row's ``split`` is its source's (``split_of`` in the source's stratum)."""
    strata = source_strata(rows)
    for line, row in enumerate(rows, start=2):
        expected = split_of(row.source_url, strata[row.source_url])
        if row.split is not expected:
            raise BadInput(
                f"speed corpus line {line}: split must be {expected} for this source_url "
                f"(stratum {strata[row.source_url].name.lower()})"
            )


def sources_by_split(rows: tuple[SpeedRow, ...]) -> dict[Split, set[str]]:
    """The source URLs of each split (disjoint by construction of ``split_of``)."""
    found: dict[Split, set[str]] = {split: set() for split in Split}
    for row in rows:
        found[row.split].add(row.source_url)
    return found
