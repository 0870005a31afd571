"""The committed llama.cpp speed corpus loads, is as large and as varied as its README says,
keeps every source in one split, and names only catalogue entries fit can price."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from solver.cost.corpus import (
    COLUMNS,
    Offload,
    SpeedRow,
    Split,
    corpus_path,
    load_corpus,
    source_strata,
    sources_by_split,
    split_of,
)
from solver.errors import BadInput
from solver.gguf.catalogue import catalogue_names

# What the corpus reached when it was gathered; it may grow, never shrink below these.
MIN_ROWS = 892
MIN_GPU_MODELS = 35
MIN_SOURCES = 76
MIN_PRICEABLE = 629
MIN_HYBRID = 36
MIN_DEPTH_ROWS = 170


@pytest.fixture(scope="module")
def rows() -> tuple[SpeedRow, ...]:
    return load_corpus()


def test_corpus_loads_with_its_documented_size(rows: tuple[SpeedRow, ...]) -> None:
    assert len(rows) >= MIN_ROWS
    assert len({row.source_url for row in rows}) >= MIN_SOURCES
    assert len({row.gpu for row in rows}) >= MIN_GPU_MODELS


def test_corpus_covers_dense_moe_hybrid_ddr4_ddr5_and_depth(rows: tuple[SpeedRow, ...]) -> None:
    assert {row.moe for row in rows} == {"yes", "no"}
    assert sum(row.offload is Offload.HYBRID for row in rows) >= MIN_HYBRID
    assert any(row.offload is Offload.FULL_GPU for row in rows)
    ram = {row.ram_type for row in rows if row.offload is Offload.HYBRID}
    assert {"DDR4", "DDR5"} <= ram
    assert sum((row.depth or 0) > 0 for row in rows) >= MIN_DEPTH_ROWS


def test_no_source_is_in_both_splits(rows: tuple[SpeedRow, ...]) -> None:
    by_split = sources_by_split(rows)
    assert by_split[Split.TRAIN] and by_split[Split.TEST]
    assert not by_split[Split.TRAIN] & by_split[Split.TEST]
    strata = source_strata(rows)
    assert all(row.split is split_of(row.source_url, strata[row.source_url]) for row in rows)


def test_priceable_hybrid_moe_rows_are_in_both_splits(rows: tuple[SpeedRow, ...]) -> None:
    hybrid_moe = [
        row for row in rows
        if row.offload is Offload.HYBRID and row.moe == "yes" and row.priceable == "yes"
    ]  # fmt: skip
    assert {row.split for row in hybrid_moe} == set(Split)
    assert sum(row.split is Split.TEST for row in hybrid_moe) >= 4


def test_priceable_rows_name_catalogue_entries(rows: tuple[SpeedRow, ...]) -> None:
    names = set(catalogue_names())
    priceable = [row for row in rows if row.priceable == "yes"]
    assert len(priceable) >= MIN_PRICEABLE
    assert {row.catalogue_entry for row in priceable} <= names


def _write(tmp_path: Path, edit: dict[str, str]) -> Path:
    """The first corpus row with ``edit`` applied, as a one-row corpus file."""
    with corpus_path().open(newline="", encoding="utf-8") as handle:
        first = next(csv.DictReader(handle))
    path = tmp_path / "corpus.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerow(first | edit)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"split": "holdout"}, "split"),
        ({"decode_tps": "-3"}, "decode_tps"),
        ({"decode_tps": "", "prefill_tps": ""}, "neither decode_tps nor prefill_tps"),
        ({"gpu": ""}, "empty required column(s) gpu"),
        ({"moe": "maybe"}, "moe"),
        ({"n_prompt": "many"}, "n_prompt"),
    ],
)
def test_bad_rows_are_refused_with_their_line(tmp_path: Path, edit: dict, message: str) -> None:
    with pytest.raises(BadInput, match="line 2") as caught:
        load_corpus(_write(tmp_path, edit))
    assert message in str(caught.value)


def test_a_split_other_than_the_hash_is_refused(tmp_path: Path) -> None:
    with corpus_path().open(newline="", encoding="utf-8") as handle:
        first = next(csv.DictReader(handle))
    wrong = Split.TRAIN if split_of(first["source_url"]) is Split.TEST else Split.TEST
    with pytest.raises(BadInput, match="split must be"):
        load_corpus(_write(tmp_path, {"split": wrong.value}))


def test_a_header_that_is_not_the_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corpus.csv"
    path.write_text("source_url,decode_tps\nhttps://example.org,1\n", encoding="utf-8")
    with pytest.raises(BadInput, match="header"):
        load_corpus(path)
