"""MODEL resolution: local files, split sets (gguf-py's own split writer), catalogue names."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFValueType, GGUFWriter, Keys

from solver.errors import BadInput
from solver.gguf.sources import load_inventory, split_part_names
from tests.gguf_bytes import llama_metadata, llama_tensors, write_llama


def test_split_part_names() -> None:
    assert split_part_names("m-00002-of-00003.gguf") == [
        "m-00001-of-00003.gguf",
        "m-00002-of-00003.gguf",
        "m-00003-of-00003.gguf",
    ]
    assert split_part_names("m.gguf") is None
    assert split_part_names("m-00004-of-00003.gguf") is None


def test_single_file(tmp_path: Path) -> None:
    (path,) = write_llama(tmp_path / "m.gguf")
    inv = load_inventory(str(path))
    assert inv.files == (str(path),)
    assert inv.file_bytes == path.stat().st_size
    assert inv.header_bytes <= inv.bytes_read


@pytest.mark.parametrize("part", [0, 1, 2])
def test_split_set_merges_like_one_file(tmp_path: Path, part: int) -> None:
    (single,) = write_llama(tmp_path / "one.gguf")
    parts = write_llama(tmp_path / "split.gguf", split_max_tensors=7)
    assert len(parts) == 3
    whole = load_inventory(str(single))
    merged = load_inventory(str(parts[part]))
    assert merged.files == tuple(str(p) for p in parts)
    assert [t.name for t in merged.tensors] == [t.name for t in whole.tensors]
    assert merged.total_bytes == whole.total_bytes
    assert merged.file_bytes == sum(p.stat().st_size for p in parts)
    assert [t.file_index for t in merged.tensors] == [i // 7 for i in range(merged.n_tensors)]
    same = {"architecture", "n_layers", "n_embd", "attention", "experts", "n_ff"}
    assert merged.model_dump(include=same) == whole.model_dump(include=same)


def test_missing_part(tmp_path: Path) -> None:
    parts = write_llama(tmp_path / "split.gguf", split_max_tensors=7)
    parts[1].unlink()
    with pytest.raises(BadInput, match=r"missing 1: .*split-00002-of-00003\.gguf"):
        load_inventory(str(parts[0]))


def write_part(
    path: Path, names: list[str], *, no: int, count: int, total: int, first: bool
) -> None:
    """One hand-made part: chosen tensors and split keys, model metadata only in the first."""
    writer = GGUFWriter(path, "llama")
    if first:
        llama_metadata(writer)
    else:
        writer.kv_data[0].clear()  # later parts carry only the split keys, as gguf-py writes
    writer.add_key_value(Keys.Split.LLM_KV_SPLIT_NO, no, GGUFValueType.UINT16)
    writer.add_key_value(Keys.Split.LLM_KV_SPLIT_COUNT, count, GGUFValueType.UINT16)
    writer.add_key_value(Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT, total, GGUFValueType.INT32)
    shapes = llama_tensors()
    for name in names:
        writer.add_tensor(name, np.zeros(shapes[name], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def hand_split(tmp_path: Path, **override: int) -> list[Path]:
    names = list(llama_tensors())
    half = len(names) // 2
    paths = [tmp_path / f"h-0000{i}-of-00002.gguf" for i in (1, 2)]
    for index, (path, chunk) in enumerate(zip(paths, (names[:half], names[half:]), strict=True)):
        write_part(
            path,
            chunk,
            no=override.get(f"no{index}", index),
            count=override.get(f"count{index}", 2),
            total=override.get("total", len(names)),
            first=index == 0,
        )
    return paths


def test_hand_made_split_set_merges(tmp_path: Path) -> None:
    paths = hand_split(tmp_path)
    assert load_inventory(str(paths[1])).n_tensors == len(llama_tensors())


def test_inconsistent_split_count(tmp_path: Path) -> None:
    paths = hand_split(tmp_path, count1=3)
    with pytest.raises(BadInput, match=re.escape("split.count is 3 but the file names say 2")):
        load_inventory(str(paths[0]))


def test_gap_in_split_numbers(tmp_path: Path) -> None:
    paths = hand_split(tmp_path, no1=2)
    with pytest.raises(BadInput, match=re.escape("split.no is 2, expected 1")):
        load_inventory(str(paths[0]))


def test_tensor_count_mismatch(tmp_path: Path) -> None:
    paths = hand_split(tmp_path, total=5)
    with pytest.raises(BadInput, match=re.escape("split.tensors.count says 5 tensors")):
        load_inventory(str(paths[0]))


def test_split_part_without_split_name(tmp_path: Path) -> None:
    paths = hand_split(tmp_path)
    renamed = paths[0].rename(tmp_path / "renamed.gguf")
    with pytest.raises(BadInput, match="name does not follow"):
        load_inventory(str(renamed))


def test_not_a_file_nor_catalogue_name() -> None:
    with pytest.raises(BadInput, match="not a file, hf:// URL or catalogue name"):
        load_inventory("no-such-model-anywhere")


def test_missing_gguf_path(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        load_inventory(str(tmp_path / "absent.gguf"))


def test_directory_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="is a directory"):
        load_inventory(str(tmp_path))


def test_catalogue_names_are_consulted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """solver.gguf.catalogue belongs to another part of fit; stand in for its two functions."""
    (path,) = write_llama(tmp_path / "m.gguf")
    stand_in = types.ModuleType("solver.gguf.catalogue")
    stand_in.catalogue_names = lambda: ["tiny-llama"]  # type: ignore[attr-defined]
    stand_in.load_catalogue_entry = lambda name: load_inventory(str(path))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "solver.gguf.catalogue", stand_in)
    assert load_inventory("tiny-llama").n_tensors == len(llama_tensors())
    with pytest.raises(BadInput, match=r"catalogue: tiny-llama\)"):
        load_inventory("huge-llama")
