"""Placement units: the parts of a layer that ``-ot`` can move as one, and per-layer tables.

A placement never moves single tensors: it moves a unit of one layer (its routed experts,
its shared experts, its dense FFN, its attention) because that is what a short ``-ot`` rule
names. Everything else in a layer (norms outside attention, the router) follows the layer's
``-ngl``/``-ts`` device. The unit of a tensor is decided by the very regex fragments the
renderer writes (``UNIT_PATTERNS``), so what the solver plans and what llama.cpp moves cannot
drift apart.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cache

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from solver.gguf.inventory import Inventory, Tensor


class Unit(StrEnum):
    """Movable parts of a repeating layer, in the order the layer's graph runs them."""

    ATTENTION = "attention"
    FFN_DENSE = "ffn_dense"
    SHARED_EXPERTS = "shared_experts"
    EXPERTS = "experts"


# Regex fragment matching the part of a tensor name after ``blk\.N\.``: both what decides a
# tensor's unit here and what the ``-ot`` rules say (solver.plan.render), in the short form people
# write by hand. A tensor no fragment matches follows its layer.
UNIT_PATTERNS: dict[Unit, str] = {
    Unit.EXPERTS: r"ffn_.*_exps\.",
    Unit.SHARED_EXPERTS: r"ffn_.*_shexp\.",
    Unit.FFN_DENSE: r"ffn_(up|down|gate)\.",
    Unit.ATTENTION: r"attn_",
}

_UNIT_ORDER = (Unit.EXPERTS, Unit.SHARED_EXPERTS, Unit.FFN_DENSE, Unit.ATTENTION)
_LAYER_PREFIX = re.compile(r"^blk\.\d+\.")


@cache
def _compiled(unit: Unit) -> re.Pattern[str]:
    return re.compile(UNIT_PATTERNS[unit])


def unit_of(tensor: Tensor) -> Unit | None:
    """The unit a layer tensor moves with, or None if it always follows its layer."""
    if tensor.layer is None:
        return None
    rest = _LAYER_PREFIX.sub("", tensor.name)
    for unit in _UNIT_ORDER:
        if _compiled(unit).match(rest):
            return unit
    return None


# Weight types the GPU backends multiply as floats: ggml-cuda.cu ``ggml_cuda_mul_mat`` sends them
# to cuBLAS (``ggml_cuda_op_mul_mat_cublas``) while quantized types take ``ggml_cuda_mul_mat_q``
# (MMQ); Metal and Vulkan likewise have separate float and dequantizing matmul kernels.
FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})


class LayerTable(BaseModel):
    """Per-layer, per-unit byte counts of one inventory; arrays are [n_layers, len(Unit)].

    ``stored`` is what a device must hold; ``read_per_token`` is what decoding one token
    reads (routed experts only ``n_expert_used / n_expert`` of their bytes); ``pinned`` is
    per layer the bytes that no ``-ot`` unit covers (norms, router), which follow the layer.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    units: tuple[Unit, ...]
    stored: np.ndarray
    read_per_token: np.ndarray
    params: np.ndarray
    pinned: np.ndarray
    pinned_params: np.ndarray
    global_bytes: dict[str, int]
    float_params: np.ndarray | None = Field(
        default=None,
        description="of ``params``, those of float matrices (F32/F16/BF16: the GPU backends "
        "multiply them with their float GEMM, not their quantized kernels); None: none",
    )


def build_layer_table(inventory: Inventory) -> LayerTable:
    """Sum the inventory's tensors by (layer, unit); global tensors by name."""
    units = tuple(Unit)
    column = {unit: i for i, unit in enumerate(units)}
    n_layers = inventory.n_layers
    stored = np.zeros((n_layers, len(units)), dtype=np.int64)
    params = np.zeros((n_layers, len(units)), dtype=np.int64)
    float_params = np.zeros((n_layers, len(units)), dtype=np.int64)
    pinned = np.zeros(n_layers, dtype=np.int64)
    pinned_params = np.zeros(n_layers, dtype=np.int64)
    global_bytes: dict[str, int] = {}
    for tensor in inventory.tensors:
        if tensor.layer is None or tensor.layer >= n_layers:
            # MTP / nextn layers beyond block_count are loaded but never run for decoding.
            global_bytes[tensor.name] = tensor.n_bytes
            continue
        unit = unit_of(tensor)
        if unit is None:
            pinned[tensor.layer] += tensor.n_bytes
            pinned_params[tensor.layer] += tensor.n_elements
        else:
            stored[tensor.layer, column[unit]] += tensor.n_bytes
            params[tensor.layer, column[unit]] += tensor.n_elements
            if tensor.type in FLOAT_TYPES and len(tensor.shape) >= 2:
                float_params[tensor.layer, column[unit]] += tensor.n_elements
    read = stored.astype(np.float64)
    experts = inventory.experts
    if experts.count > 0 and experts.used > 0:
        read[:, column[Unit.EXPERTS]] *= experts.used / experts.count
    return LayerTable(
        units=units,
        stored=stored,
        read_per_token=read,
        params=params,
        pinned=pinned,
        pinned_params=pinned_params,
        global_bytes=global_bytes,
        float_params=float_params,
    )
