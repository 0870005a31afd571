"""llama.cpp's loader rules at load time (issue 15): tensors and shapes against what the
architecture requires, hyperparameters in sane ranges, one BadInput line, before any graph.

The tables are checked against the blueprints, whose ``required`` flags the real llama-server
confirms (tests/test_synthetic_llama.py): removing a required tensor is refused, removing an
optional one is not. The issue's examples go through ``fit`` itself.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from gguf import GGUFWriter, LlamaFileType

from cli import cli
from solver.errors import BadInput
from solver.gguf.blueprint import Arch, Blueprint, gguf_metadata, tensor_specs
from solver.gguf.catalogue import (
    catalogue_blueprint,
    catalogue_models,
    catalogue_names,
    load_catalogue_entry,
)
from solver.gguf.hparams import build_inventory
from solver.gguf.inventory import Inventory, make_tensor
from solver.gguf.loadable import FAMILIES, check_loadable, dimension_value
from solver.gguf.sources import load_inventory
from solver.gguf.synthetic import miniature, tiny_blueprint
from tests.gguf_bytes import llama_metadata, llama_tensors, write_llama

# --- the tables against the blueprints -------------------------------------------------------


def blueprint_inventory(bp: Blueprint, *, without: frozenset[str] = frozenset()) -> Inventory:
    metadata = gguf_metadata(bp, LlamaFileType.MOSTLY_BF16)
    tensors = [
        make_tensor(spec.name, "F32", spec.shape, 4 * math.prod(spec.shape))
        for spec in tensor_specs(bp)
        if spec.name not in without
    ]
    return build_inventory(f"{bp.name}.gguf", metadata, tensors)


def blueprints() -> list[Blueprint]:
    tiny = [tiny_blueprint(arch) for arch in Arch]
    minis = [miniature(catalogue_blueprint(model)) for model in catalogue_models()]
    return tiny + minis


@pytest.mark.parametrize("bp", blueprints(), ids=lambda bp: f"{bp.architecture}-{bp.name}")
def test_every_blueprint_is_loadable_and_its_required_tensors_are_required(bp: Blueprint) -> None:
    assert bp.architecture.value in FAMILIES, "a blueprint architecture needs its loader table"
    check_loadable(blueprint_inventory(bp))
    for spec in tensor_specs(bp):
        if spec.skipped:
            continue  # MTP layers: llama.cpp skips them; their own test is below
        inventory = blueprint_inventory(bp, without=frozenset({spec.name}))
        if spec.required:
            # without a fused gate_up, create_tensor_gate_up_exps (deepseek2, mistral4) asks
            # for the separate gate and up experts: the first one missing is the gate; without
            # a fused attn_qkv, create_tensor_qkv (phi3) asks for attn_q first
            alternative = spec.name.replace("ffn_gate_up_exps", "ffn_gate_exps")
            alternative = re.sub(r"\.attn_qkv\.weight$", ".attn_q.weight", alternative)
            names = f"({re.escape(spec.name)}|{re.escape(alternative)})"
            with pytest.raises(BadInput, match=f"tensor '{names}' is missing"):
                check_loadable(inventory)
        else:
            check_loadable(inventory)


@pytest.mark.parametrize("arch", ["deepseek2", "glm4moe"])
def test_mtp_layers_follow_the_probe(arch: str) -> None:
    """Without blk.{n_layer}.nextn.eh_proj the MTP layers are optional (a file converted
    without them); with it, their norms are required, their skipped QKV is not."""
    bp = tiny_blueprint(arch).model_copy(update={"nextn_layers": 1})
    n_layer = bp.n_layer
    mtp = [s.name for s in tensor_specs(bp) if s.skipped]
    assert mtp
    check_loadable(blueprint_inventory(bp, without=frozenset(mtp)))
    with pytest.raises(BadInput, match=f"blk.{n_layer}.nextn.enorm.weight' is missing"):
        check_loadable(
            blueprint_inventory(bp, without=frozenset({f"blk.{n_layer}.nextn.enorm.weight"}))
        )
    if arch == "glm4moe":
        check_loadable(blueprint_inventory(bp, without=frozenset({f"blk.{n_layer}.attn_q.weight"})))


def test_catalogue_is_loadable() -> None:
    for name in catalogue_names():
        check_loadable(load_catalogue_entry(name))


def test_wrong_shape_names_the_dimensions() -> None:
    bp = tiny_blueprint("qwen3")
    inventory = blueprint_inventory(bp)
    tensors = [
        t.model_copy(update={"shape": (t.shape[0], t.shape[1] * 2)})
        if t.name == "blk.1.attn_k.weight"
        else t
        for t in inventory.tensors
    ]
    with pytest.raises(BadInput) as caught:
        check_loadable(inventory.model_copy(update={"tensors": tuple(tensors)}))
    message = str(caught.value)
    assert "tensor 'blk.1.attn_k.weight' has shape" in message
    assert "n_embd" in message and "n_head_kv" in message and "\n" not in message


def test_fused_qkv_is_accepted_in_place_of_q_k_v() -> None:
    bp = tiny_blueprint("llama")
    inventory = blueprint_inventory(bp)
    q, k, v = (inventory.tensor(f"blk.0.attn_{x}.weight") for x in "qkv")
    fused = make_tensor(
        "blk.0.attn_qkv.weight", "F32", (q.shape[0], q.shape[1] + k.shape[1] + v.shape[1]), 4
    )
    kept = [t for t in inventory.tensors if t.name not in {q.name, k.name, v.name}]
    check_loadable(inventory.model_copy(update={"tensors": (*kept, fused)}))


@pytest.mark.parametrize(
    ("expression", "value"),
    [("E", 64), ("2*E", 128), ("H*HK", 48), ("KVL+ROT", 20), ("ROT/2", 2), ("2*H*HK-E+3", 35)],
)
def test_dimension_expressions(expression: str, value: int) -> None:
    dims = {"E": 64, "H": 4, "HK": 12, "KVL": 16, "ROT": 4}
    assert dimension_value(expression, dims) == value


# --- architectures without a table: what every llama.cpp model has ----------------------------


def _tiny_llama(tmp_path: Path) -> Inventory:
    (path,) = write_llama(tmp_path / "tiny.gguf")
    return load_inventory(str(path))


def test_untabled_architecture_gets_the_generic_checks(tmp_path: Path) -> None:
    inventory = _tiny_llama(tmp_path).model_copy(update={"architecture": "orion"})
    check_loadable(inventory)
    no_embedding = tuple(t for t in inventory.tensors if t.name != "token_embd.weight")
    with pytest.raises(BadInput, match=r"'token_embd\.weight' is missing"):
        check_loadable(inventory.model_copy(update={"tensors": no_embedding}))
    no_layer_1 = tuple(t for t in inventory.tensors if t.layer != 1)
    with pytest.raises(BadInput, match="layer 1 has no tensors"):
        check_loadable(inventory.model_copy(update={"tensors": no_layer_1}))


# --- the files through fit -------------------------------------------------------------


def write_gguf(path: Path, shapes: dict[str, tuple], **metadata: int) -> Path:
    """A tiny F32 llama (tests.gguf_bytes) with ``shapes`` as its tensors (numpy order) and
    metadata overrides (``head_count_kv=...``)."""
    writer = GGUFWriter(path, "llama")
    llama_metadata(writer)
    for key, value in metadata.items():
        writer.add_uint32(f"llama.{key.replace('__', '.')}", value)
    for index, (name, shape) in enumerate(shapes.items()):
        writer.add_tensor(name, np.full(shape, index, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def refused_by_every_command(path: Path, *fragments: str) -> None:
    commands = (
        ["inspect", str(path)],
        ["memory", str(path), "--", "-c", "256"],
        ["solve", str(path), "--hardware", "single-4090", "--ctx", "256"],
    )
    for args in commands:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        for fragment in fragments:
            assert fragment in lines[0], (args, lines[0])


def test_missing_layer_tensor_is_refused_before_any_graph(tmp_path: Path) -> None:
    shapes = llama_tensors()
    del shapes["blk.1.attn_q.weight"]
    path = write_gguf(tmp_path / "missing.gguf", shapes)
    refused_by_every_command(path, "tensor 'blk.1.attn_q.weight' is missing", "llama loader")


def test_one_flipped_bit_in_a_name_is_refused(tmp_path: Path) -> None:
    (path,) = write_llama(tmp_path / "flip.gguf")
    data = bytearray(path.read_bytes())
    at = data.index(b"blk.1.attn_q.weight") + len("blk.1.attn_")
    data[at] ^= 0x10  # 'q' -> 'a': blk.1.attn_a.weight
    path.write_bytes(bytes(data))
    refused_by_every_command(path, "tensor 'blk.1.attn_q.weight' is missing")


def test_file_without_tensors_is_refused(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "empty.gguf", {})
    refused_by_every_command(path, "holds no tensors")


def test_absurd_kv_head_count_is_refused(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "kv.gguf", llama_tensors(), attention__head_count_kv=2**32 - 1)
    refused_by_every_command(path, "head_count_kv 4294967295 is outside [0, 4096]")


def test_kv_heads_not_dividing_query_heads_are_refused(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "kv3.gguf", llama_tensors(), attention__head_count_kv=3)
    refused_by_every_command(path, "3 KV heads for 4 query heads")


def test_block_count_beyond_the_tensors_is_refused(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "blocks.gguf", llama_tensors(), block_count=40)
    refused_by_every_command(path, "tensor 'blk.2.attn_norm.weight' is missing")


def write_split_llama(path: Path, n_embd: int) -> list[Path]:
    """A tiny llama of width ``n_embd`` in parts of 7 tensors, as gguf-py splits it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(path, "llama", split_max_tensors=7)
    llama_metadata(writer, n_embd=n_embd)
    for index, (name, shape) in enumerate(llama_tensors(n_embd=n_embd).items()):
        writer.add_tensor(name, np.full(shape, index, dtype=np.float32))
    files = writer.format_shard_names(path)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return files


def test_split_part_from_another_model_is_refused(tmp_path: Path) -> None:
    """Same layout, same counts, another model's part 2: its shapes give it away."""
    ours = write_split_llama(tmp_path / "a" / "m.gguf", n_embd=64)
    theirs = write_split_llama(tmp_path / "b" / "m.gguf", n_embd=32)
    assert len(ours) == len(theirs) == 3
    ours[1].write_bytes(theirs[1].read_bytes())
    refused_by_every_command(ours[0], "has shape", "n_embd 64")


def test_split_parts_must_agree_on_the_tensor_count(tmp_path: Path) -> None:
    parts = write_llama(tmp_path / "s.gguf", split_max_tensors=7)
    data = bytearray(parts[2].read_bytes())
    key = b"split.tensors.count"
    at = data.index(key) + len(key) + 4  # past the key and its value type
    (count,) = struct.unpack_from("<i", data, at)
    struct.pack_into("<i", data, at, count + 1)
    parts[2].write_bytes(bytes(data))
    with pytest.raises(BadInput, match=r"split\.tensors\.count"):
        load_inventory(str(parts[0]))
