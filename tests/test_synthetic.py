"""Synthetic GGUF files read back with gguf-py: headers, split naming, sparse giants.

Loading them in the real llama-server is tests/test_synthetic_llama.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import pytest

from solver.errors import BadInput
from solver.gguf.blueprint import Arch
from solver.gguf.catalogue import catalogue_blueprint, load_catalogue_entry
from solver.gguf.synthetic import (
    build_vocab,
    miniature,
    split_path,
    tiny_blueprint,
    write_synthetic_gguf,
)


def test_sparse_deepseek_v3_costs_no_disk(tmp_path: Path) -> None:
    blueprint = catalogue_blueprint("deepseek-v3")
    [path] = write_synthetic_gguf(blueprint, "Q4_K_M", tmp_path / "dsv3.gguf", sparse=True)
    stat = os.stat(path)
    expected = load_catalogue_entry("deepseek-v3:Q4_K_M")
    assert stat.st_size > expected.total_bytes  # data plus header and alignment padding
    assert stat.st_blocks * 512 < 64 * 1024 * 1024  # only the header is on disk
    reader = gguf.GGUFReader(path)
    assert [t.name for t in reader.tensors] == [t.name for t in expected.tensors]
    assert sum(int(t.n_bytes) for t in reader.tensors) == expected.total_bytes
    last = reader.tensors[-1]
    assert int(last.data_offset) + int(last.n_bytes) <= stat.st_size
    assert reader.fields["deepseek2.block_count"].contents() == 61
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == 129280


def test_written_header_round_trips(tmp_path: Path) -> None:
    blueprint = tiny_blueprint("gpt-oss")
    [path] = write_synthetic_gguf(blueprint, "MXFP4", tmp_path / "m.gguf")
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.architecture"].contents() == "gpt-oss"
    assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_MXFP4_MOE
    assert reader.fields["gpt-oss.rope.scaling.type"].contents() == "yarn"
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.ffn_down_exps.weight"] == "MXFP4"
    assert types["blk.0.attn_q.weight"] == "Q8_0"
    assert types["blk.0.attn_sinks.weight"] == "F32"
    data = reader.tensors[0].data
    assert not data.any()  # zeros, written (not sparse)


def test_split_names_follow_llama_split_path() -> None:
    assert split_path(Path("/m/model.gguf"), 0, 3).name == "model-00001-of-00003.gguf"
    assert split_path(Path("/m/model"), 2, 3).name == "model-00003-of-00003.gguf"


def test_cannot_split_into_more_parts_than_tensors(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        write_synthetic_gguf(tiny_blueprint("llama"), "Q8_0", tmp_path / "m.gguf", n_parts=500)


@pytest.mark.parametrize("arch", [a.value for a in Arch])
def test_vocab_has_exactly_n_vocab_unique_tokens(arch: str) -> None:
    blueprint = tiny_blueprint(arch)
    vocab = build_vocab(blueprint)
    assert len(vocab.tokens) == len(vocab.token_types) == blueprint.n_vocab
    assert len(set(vocab.tokens)) == blueprint.n_vocab
    for merge in vocab.merges:  # every merge result is itself a token
        assert merge.replace(" ", "") in vocab.tokens


def test_miniature_keeps_structure() -> None:
    full = catalogue_blueprint("glm-4.5-air")
    mini = miniature(full)
    assert mini.architecture is full.architecture
    assert (mini.nextn_layers, mini.leading_dense_layers, mini.n_expert_shared) == (1, 1, 1)
    assert mini.attention_bias and not mini.tied_embeddings
    assert mini.n_embd == 256
