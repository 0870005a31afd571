"""ggml type arithmetic: row sizes and tensor sizes, from gguf-py's quantization table."""

from __future__ import annotations

from functools import cache

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from solver.errors import BadInput

_NOT_QUANTIZED = frozenset({"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"})


@cache
def block_and_type_size(type_name: str) -> tuple[int, int]:
    """(elements per block, bytes per block) of a ggml type, e.g. Q8_0 -> (32, 34)."""
    try:
        return GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    except KeyError:
        raise BadInput(f"unknown ggml type '{type_name}'") from None


def row_size(type_name: str, n: int) -> int:
    """``ggml_row_size``: bytes of ``n`` elements of one row."""
    block, size = block_and_type_size(type_name)
    return size * n // block


def n_bytes(type_name: str, shape: tuple[int, ...]) -> int:
    """``ggml_nbytes`` of a contiguous tensor (shape in ggml order)."""
    count = 1
    for dim in shape[1:]:
        count *= dim
    return row_size(type_name, shape[0]) * count


def is_quantized(type_name: str) -> bool:
    """``ggml_is_quantized``: block types (everything but the plain float and int types)."""
    return type_name not in _NOT_QUANTIZED


def n_dims(shape: tuple[int, ...]) -> int:
    """``ggml_n_dims``: dimensions up to the last one that is not 1 (at least 1)."""
    dims = len(shape)
    while dims > 1 and shape[dims - 1] == 1:
        dims -= 1
    return max(dims, 1)


def pad(size: int, alignment: int) -> int:
    """``GGML_PAD``"""
    return (size + alignment - 1) // alignment * alignment
