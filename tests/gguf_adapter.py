"""A private GGUF -> Inventory reader for the memory tests.

``solver.sources.load_inventory`` is written elsewhere; until it is on main these tests read
GGUF headers with gguf-py's own ``GGUFReader`` and build the shared ``Inventory`` record.
Metadata keeps scalars and arrays (the memory model reads per-layer arrays).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFValueType, Keys

from solver.inventory import Attention, Experts, Inventory, make_tensor


def _field_value(reader: GGUFReader, key: str):
    field = reader.fields.get(key)
    if field is None:
        return None
    if field.types and field.types[0] == GGUFValueType.ARRAY:
        if field.types[-1] == GGUFValueType.STRING:
            return len(field.data)
        return [field.parts[i].tolist()[0] for i in field.data]
    if field.types[0] == GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    value = field.parts[field.data[0]].tolist()[0]
    return value


def read_inventory(path: Path) -> Inventory:
    reader = GGUFReader(path)
    metadata = {}
    for key in reader.fields:
        if key.startswith("GGUF.") or key.startswith("tokenizer.ggml.merges"):
            continue
        value = _field_value(reader, key)
        if value is not None:
            metadata[key] = value
    arch = metadata["general.architecture"]

    def get(template: str, default=None):
        return metadata.get(template.format(arch=arch), default)

    n_layers = int(get(Keys.LLM.BLOCK_COUNT))

    def per_layer(template: str, default: int) -> tuple[int, ...]:
        value = get(template, default)
        if isinstance(value, list):
            return tuple(int(v) for v in value)
        return (int(value),) * n_layers

    n_head = per_layer(Keys.Attention.HEAD_COUNT, 0)
    n_head_kv = per_layer(Keys.Attention.HEAD_COUNT_KV, n_head[0]) if n_head else ()
    tensors = []
    for t in reader.tensors:
        shape = tuple(int(x) for x in np.asarray(t.shape).tolist())
        tensors.append(make_tensor(t.name, t.tensor_type.name, shape, int(t.n_bytes)))
    n_vocab = get(Keys.LLM.VOCAB_SIZE) or metadata.get("tokenizer.ggml.tokens") or 0
    attention = Attention(
        n_head=n_head,
        n_head_kv=n_head_kv,
        key_length=int(get(Keys.Attention.KEY_LENGTH, 0) or 0),
        value_length=int(get(Keys.Attention.VALUE_LENGTH, 0) or 0),
        sliding_window=int(get(Keys.Attention.SLIDING_WINDOW, 0) or 0),
        kv_lora_rank=int(get(Keys.Attention.KV_LORA_RANK, 0) or 0),
    )
    experts = Experts(
        count=int(get(Keys.LLM.EXPERT_COUNT, 0) or 0),
        used=int(get(Keys.LLM.EXPERT_USED_COUNT, 0) or 0),
        shared=int(get(Keys.LLM.EXPERT_SHARED_COUNT, 0) or 0),
        leading_dense_layers=int(get(Keys.LLM.LEADING_DENSE_BLOCK_COUNT, 0) or 0),
    )
    return Inventory(
        source=str(path),
        architecture=arch,
        n_layers=n_layers,
        n_embd=int(get(Keys.LLM.EMBEDDING_LENGTH)),
        n_vocab=int(n_vocab),
        context_length=int(get(Keys.LLM.CONTEXT_LENGTH, 0)),
        n_ff=per_layer(Keys.LLM.FEED_FORWARD_LENGTH, 0),
        attention=attention,
        experts=experts,
        metadata=metadata,
        tensors=tuple(tensors),
        files=(str(path),),
    )
