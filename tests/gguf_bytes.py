"""Byte-level GGUF builders for tests: well-formed files via gguf-py's ``GGUFWriter``, and
raw headers with any field set to anything (hostile counts, bad types) that no writer emits."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from gguf import GGUF_MAGIC, GGMLQuantizationType, GGUFValueType, GGUFWriter


def gguf_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv_u32(key: str, value: int) -> bytes:
    return gguf_string(key) + struct.pack("<II", GGUFValueType.UINT32, value)


def kv_str(key: str, value: str) -> bytes:
    return gguf_string(key) + struct.pack("<I", GGUFValueType.STRING) + gguf_string(value)


def kv_u32_array(key: str, values: Sequence[int]) -> bytes:
    head = struct.pack("<IIQ", GGUFValueType.ARRAY, GGUFValueType.UINT32, len(values))
    return gguf_string(key) + head + struct.pack(f"<{len(values)}I", *values)


def tensor_info(name: str, shape: Sequence[int], type_id: int, offset: int) -> bytes:
    dims = struct.pack(f"<I{len(shape)}q", len(shape), *shape)  # signed: tests write -1
    return gguf_string(name) + dims + struct.pack("<IQ", type_id, offset)


def raw_gguf(
    kvs: Sequence[bytes] = (),
    infos: Sequence[bytes] = (),
    *,
    version: int = 3,
    n_tensors: int | None = None,
    n_kv: int | None = None,
    data: bytes = b"",
    alignment: int = 32,
    magic: int = GGUF_MAGIC,
) -> bytes:
    """A GGUF file from pieces; counts default to the real ones, data is aligned after them."""
    head = struct.pack(
        "<IIQQ",
        magic,
        version,
        len(infos) if n_tensors is None else n_tensors,
        len(kvs) if n_kv is None else n_kv,
    )
    body = head + b"".join(kvs) + b"".join(infos)
    if data:
        body += b"\0" * (-len(body) % alignment) + data
    return body


def f32_tensor(name: str, shape: Sequence[int], offset: int) -> tuple[bytes, int]:
    """A tensor info for an F32 tensor (shape in ggml order) and its byte size."""
    size = 4
    for dim in shape:
        size *= dim
    return tensor_info(name, shape, GGMLQuantizationType.F32, offset), size


def llama_metadata(writer: GGUFWriter, n_layers: int = 2, n_embd: int = 64) -> None:
    """The minimum a 'llama' GGUF needs for fit (and llama.cpp's load_hparams)."""
    writer.add_block_count(n_layers)
    writer.add_embedding_length(n_embd)
    writer.add_context_length(256)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)


def llama_tensors(n_layers: int = 2, n_embd: int = 64, n_vocab: int = 32) -> dict[str, tuple]:
    """Name -> numpy shape (row-major, i.e. reversed ggml order) of a tiny llama."""
    shapes: dict[str, tuple] = {"token_embd.weight": (n_vocab, n_embd)}
    for il in range(n_layers):
        shapes[f"blk.{il}.attn_norm.weight"] = (n_embd,)
        shapes[f"blk.{il}.attn_q.weight"] = (n_embd, n_embd)
        shapes[f"blk.{il}.attn_k.weight"] = (n_embd // 2, n_embd)
        shapes[f"blk.{il}.attn_v.weight"] = (n_embd // 2, n_embd)
        shapes[f"blk.{il}.attn_output.weight"] = (n_embd, n_embd)
        shapes[f"blk.{il}.ffn_norm.weight"] = (n_embd,)
        shapes[f"blk.{il}.ffn_gate.weight"] = (128, n_embd)
        shapes[f"blk.{il}.ffn_up.weight"] = (128, n_embd)
        shapes[f"blk.{il}.ffn_down.weight"] = (n_embd, 128)
    shapes["output_norm.weight"] = (n_embd,)
    shapes["output.weight"] = (n_vocab, n_embd)
    return shapes


def write_llama(
    path: Path,
    *,
    n_layers: int = 2,
    split_max_tensors: int = 0,
    extra_tokens: int = 0,
) -> list[Path]:
    """Write a tiny F32 llama with gguf-py (optionally as a split set); returns the files.
    ``extra_tokens``: a vocabulary of that many tokens (token_embd and output as many rows),
    for a header larger than one read window."""
    writer = GGUFWriter(path, "llama", split_max_tensors=split_max_tensors)
    llama_metadata(writer, n_layers)
    n_vocab = 32
    if extra_tokens:
        writer.add_token_list([f"token-{i}" for i in range(extra_tokens)])
        n_vocab = extra_tokens
    for index, (name, shape) in enumerate(llama_tensors(n_layers, n_vocab=n_vocab).items()):
        writer.add_tensor(name, np.full(shape, index, dtype=np.float32))
    files = writer.format_shard_names(path)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return files
