"""A bounded, streaming GGUF header reader.

It goes through a GGUF file in order (magic, version, tensor count, key/value count, key/values,
tensor infos, alignment, data offset) and stops at the first thing that is wrong with a
``GGUFError`` naming the file, the problem and the byte offset. It never reads tensor data.

Unlike gguf-py's ``GGUFReader`` (which memory-maps the whole file and trusts every count) it
reads through a small ``ByteSource`` (a local file or an HTTP range reader) in growing windows,
and bounds every count by a sane limit *and* by the bytes the file actually has, so a hostile
header (2^60 tensors, a 2^40-byte string) is refused at once instead of allocating or looping.
The rules mirror llama.cpp's own reader (``ggml/src/gguf.cpp``, ``gguf_init_from_reader``): a
file this reader accepts is one llama.cpp accepts, with one deliberate exception: a dimension
of 0 is refused here (llama.cpp allows empty tensors; no model ships one).

Metadata is kept compactly (see ``solver.gguf.inventory.MetadataValue``): every scalar and every
string up to ``MAX_KEPT_STRING`` bytes as its value; numeric and bool arrays up to
``MAX_KEPT_ARRAY`` elements (per-layer head counts, SWA patterns) as lists; string arrays of any
length and longer numeric arrays (tokenizer tokens, scores, merges) as their element count.
"""

from __future__ import annotations

import os
import struct
from typing import Protocol

from gguf import (
    GGML_QUANT_SIZES,
    GGUF_DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    GGMLQuantizationType,
    GGUFValueType,
    Keys,
)
from pydantic import BaseModel, ConfigDict, Field

from solver.errors import GGUFError
from solver.gguf.inventory import MetadataValue
from solver.quantities import KIB, MIB

SUPPORTED_VERSIONS = (2, 3)

# Limits. llama.cpp's own caps (gguf.cpp: GGUF_MAX_STRING_LENGTH, GGUF_MAX_ARRAY_ELEMENTS,
# ggml.h: GGML_MAX_DIMS, GGML_MAX_NAME) plus sane ceilings on counts; every count is also
# checked against the bytes left in the file before anything is allocated or looped over.
MAX_STRING_BYTES = 1 << 30
MAX_ARRAY_ELEMENTS = 1 << 30
MAX_DIMS = 4
MAX_TENSOR_NAME_BYTES = 63
MAX_TENSORS = 1 << 17  # fit's ceiling; the gemma file has 236
MAX_KV = 1 << 12  # fit's ceiling; the gemma file has 33
MAX_KEY_BYTES = 64 * KIB
MAX_HEADER_BYTES = 256 * MIB  # fit's ceiling; gemma's 262k-token header is 6.2 MiB
INT64_MAX = (1 << 63) - 1

# What is kept of a value; anything longer is replaced by its length.
MAX_KEPT_STRING = 1 * MIB
MAX_KEPT_ARRAY = 1024

# Reads start with a small window and double up to the maximum, so a remote header costs at
# most one window (<= FIRST_WINDOW..MAX_WINDOW) more than its own size.
FIRST_WINDOW = 256 * KIB
MAX_WINDOW = 1 * MIB

# Smallest encodings, used to bound counts by the bytes left: a key/value is a string length
# (8), a 1-byte key, a type (4) and a 1-byte value; a tensor info is a name length (8), n_dims
# (4), a type (4) and an offset (8).
_MIN_KV_BYTES = 8 + 1 + 4 + 1
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")

# struct formats of GGUF scalar value types (gguf.cpp gguf_type_size; little-endian only).
_SCALAR_FORMATS: dict[GGUFValueType, struct.Struct] = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: struct.Struct("<I"),
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<b"),
    GGUFValueType.UINT64: struct.Struct("<Q"),
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}

# ggml types of the pinned llama.cpp (ggml/include/ggml.h, ggml.c type_traits) that the
# installed gguf-py does not list yet: id -> (name, block size, bytes per block).
_NEWER_GGML_TYPES: dict[int, tuple[str, int, int]] = {
    42: ("Q2_0", 64, 2 + 64 // 4),
}


def ggml_type_info(type_id: int) -> tuple[str, int, int] | None:
    """``(name, block size, bytes per block)`` of a ggml type id, or ``None`` if unknown."""
    try:
        quant = GGMLQuantizationType(type_id)
    except ValueError:
        return _NEWER_GGML_TYPES.get(type_id)
    block_size, type_size = GGML_QUANT_SIZES[quant]
    return quant.name, block_size, type_size


class ByteSource(Protocol):
    """Random-access bytes: a local file, an HTTP range reader, a buffer.

    ``read(offset, size)`` returns up to ``size`` bytes starting at ``offset``; fewer only at
    the end of the data. ``size`` is the total length in bytes, or ``None`` if unknown.
    """

    @property
    def size(self) -> int | None: ...

    def read(self, offset: int, size: int) -> bytes: ...


class LocalFileSource:
    """A local file as a ``ByteSource``; counts the bytes it read."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as error:
            raise GGUFError(self.path, f"cannot open: {error.strerror}") from None
        self._size = os.fstat(self._fd).st_size
        self.bytes_read = 0

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, size: int) -> bytes:
        try:
            data = os.pread(self._fd, size, offset)
        except OSError as error:
            raise GGUFError(self.path, f"read failed: {error.strerror}", offset) from None
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> LocalFileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GGUFTensorInfo(BaseModel):
    """One tensor info entry of a GGUF header."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: str = Field(description="ggml type name, e.g. Q4_K")
    shape: tuple[int, ...] = Field(description="ggml order: shape[0] is the row length")
    n_bytes: int = Field(description="ggml_nbytes: elements / block size * block bytes")
    offset: int = Field(description="absolute file offset of the tensor's data")


class GGUFHeader(BaseModel):
    """Everything a GGUF file says before its tensor data."""

    model_config = ConfigDict(frozen=True)

    path: str
    version: int
    metadata: dict[str, MetadataValue]
    tensors: tuple[GGUFTensorInfo, ...]
    alignment: int
    header_size: int = Field(description="bytes from the magic to the end of the tensor infos")
    data_offset: int = Field(description="file offset where tensor data starts (aligned)")
    file_size: int | None = Field(description="file size in bytes, None if unknown")


class _Cursor:
    """Sequential reader over a ``ByteSource`` with a read-ahead window.

    The window grows from ``FIRST_WINDOW`` to ``MAX_WINDOW``; bytes already fetched are never
    fetched again, and skipped ranges are not fetched at all.
    """

    def __init__(self, source: ByteSource, path: str) -> None:
        self.source = source
        self.path = path
        self.size = source.size
        self.pos = 0
        self._buf = b""
        self._buf_start = 0
        self._window = FIRST_WINDOW

    def fail(self, problem: str, offset: int | None = None) -> GGUFError:
        return GGUFError(self.path, problem, self.pos if offset is None else offset)

    def remaining(self) -> int | None:
        return None if self.size is None else max(self.size - self.pos, 0)

    def _check_end(self, n: int, what: str) -> None:
        end = self.pos + n
        if self.size is not None and end > self.size:
            raise self.fail(f"file ends inside {what} (truncated?)")
        if end > MAX_HEADER_BYTES:
            raise self.fail(f"header is larger than {MAX_HEADER_BYTES // MIB} MiB at {what}")

    def take(self, n: int, what: str) -> bytes:
        self._check_end(n, what)
        buf_end = self._buf_start + len(self._buf)
        if self.pos + n > buf_end:
            self._fetch(n, what)
        start = self.pos - self._buf_start
        self.pos += n
        return self._buf[start : start + n]

    def _fetch(self, n: int, what: str) -> None:
        buf_end = self._buf_start + len(self._buf)
        if buf_end > self.pos:
            kept = self._buf[self.pos - self._buf_start :]
            fetch_from = buf_end
        else:
            kept = b""
            fetch_from = self.pos
        needed = self.pos + n - fetch_from
        length = max(needed, self._window)
        if self.size is not None:
            length = min(length, self.size - fetch_from)
        data = self.source.read(fetch_from, length)
        if len(data) < needed:
            raise self.fail(f"file ends inside {what} (truncated?)")
        self._window = min(self._window * 2, MAX_WINDOW)
        self._buf = kept + data
        self._buf_start = self.pos

    def skip(self, n: int, what: str) -> None:
        self._check_end(n, what)
        self.pos += n

    def skip_strings(self, count: int, what: str) -> None:
        """Skip ``count`` length-prefixed strings (a tokenizer vocabulary) without keeping them."""
        unpack_from = _U64.unpack_from
        for _ in range(count):
            at = self.pos - self._buf_start
            if at >= 0 and at + 8 <= len(self._buf):
                length = unpack_from(self._buf, at)[0]
                self.pos += 8
            else:
                length = self.u64(what)
            if length > MAX_STRING_BYTES:
                raise self.fail(f"{what} is {length} bytes long", self.pos - 8)
            self.skip(length, what)

    def u32(self, what: str) -> int:
        return _U32.unpack(self.take(4, what))[0]

    def u64(self, what: str) -> int:
        return _U64.unpack(self.take(8, what))[0]

    def i64(self, what: str) -> int:
        return _I64.unpack(self.take(8, what))[0]


def read_header(source: ByteSource, path: str) -> GGUFHeader:
    """Parse a GGUF header from ``source``; ``path`` names the file in errors.

    Raises ``GGUFError`` at the first problem, with the byte offset where it was found.
    """
    cursor = _Cursor(source, path)
    version = _read_preamble(cursor)
    n_tensors = _read_count(cursor, "tensor count", MAX_TENSORS, _MIN_TENSOR_INFO_BYTES)
    n_kv = _read_count(cursor, "key/value count", MAX_KV, _MIN_KV_BYTES)
    metadata, alignment = _read_key_values(cursor, n_kv)
    infos = [_read_tensor_info(cursor, index) for index in range(n_tensors)]
    header_size = cursor.pos
    data_offset = _align(header_size, alignment) if n_tensors else header_size
    tensors = _place_tensors(cursor, infos, data_offset, alignment)
    return GGUFHeader(
        path=path,
        version=version,
        metadata=metadata,
        tensors=tensors,
        alignment=alignment,
        header_size=header_size,
        data_offset=data_offset,
        file_size=cursor.size,
    )


def read_local_header(path: str | os.PathLike[str]) -> tuple[GGUFHeader, int]:
    """Parse the header of a local GGUF file; returns it and the bytes read from disk."""
    with LocalFileSource(path) as source:
        header = read_header(source, source.path)
        return header, source.bytes_read


def _quote(text: str, limit: int = 80) -> str:
    """A name for an error message: quoted, control bytes escaped, long names cut."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _align(offset: int, alignment: int) -> int:
    return (offset + alignment - 1) // alignment * alignment


def _read_preamble(cursor: _Cursor) -> int:
    magic = cursor.take(4, "magic")
    if _U32.unpack(magic)[0] != GGUF_MAGIC:
        shown = magic.decode("ascii", "replace")
        raise cursor.fail(f"not a GGUF file (magic {shown!r}, expected 'GGUF')", 0)
    version = cursor.u32("version")
    if version & 0xFFFF == 0:
        # gguf.cpp: a byte-swapped version reads as 0x0N000000.
        raise cursor.fail(f"GGUF version {version:#x} looks big-endian; fit reads little-endian", 4)
    if version not in SUPPORTED_VERSIONS:
        raise cursor.fail(f"unsupported GGUF version {version} (fit reads v2 and v3)", 4)
    return version


def _read_count(cursor: _Cursor, what: str, limit: int, min_entry_bytes: int) -> int:
    offset = cursor.pos
    count = cursor.i64(what)
    if count < 0 or count > limit:
        raise cursor.fail(f"{what} {count} is outside [0, {limit}]", offset)
    remaining = cursor.remaining()
    if remaining is not None and count * min_entry_bytes > remaining:
        raise cursor.fail(
            f"{what} {count} needs at least {count * min_entry_bytes} bytes "
            f"but only {remaining} remain",
            offset,
        )
    return count


def _read_string_length(cursor: _Cursor, what: str, limit: int) -> int:
    offset = cursor.pos
    length = cursor.u64(f"length of {what}")
    if length > limit:
        raise cursor.fail(f"{what} is {length} bytes long (limit {limit})", offset)
    remaining = cursor.remaining()
    if remaining is not None and length > remaining:
        raise cursor.fail(f"{what} is {length} bytes long but only {remaining} remain", offset)
    return length


def _read_string(cursor: _Cursor, what: str, limit: int = MAX_STRING_BYTES) -> str:
    length = _read_string_length(cursor, what, limit)
    return cursor.take(length, what).decode("utf-8", "replace")


def _read_value_type(cursor: _Cursor, what: str) -> GGUFValueType:
    offset = cursor.pos
    type_id = cursor.u32(what)
    try:
        return GGUFValueType(type_id)
    except ValueError:
        raise cursor.fail(f"{what} has unknown GGUF value type {type_id}", offset) from None


def _read_key_values(cursor: _Cursor, n_kv: int) -> tuple[dict[str, MetadataValue], int]:
    metadata: dict[str, MetadataValue] = {}
    alignment = GGUF_DEFAULT_ALIGNMENT
    for index in range(n_kv):
        key_offset = cursor.pos
        key = _read_string(cursor, f"key #{index}", MAX_KEY_BYTES)
        if not key:
            raise cursor.fail(f"key #{index} is empty", key_offset)
        if key in metadata:
            raise cursor.fail(f"duplicate key {_quote(key)}", key_offset)
        value_type = _read_value_type(cursor, f"key {_quote(key)}")
        if key == Keys.General.ALIGNMENT:
            alignment = _read_alignment(cursor, value_type)
            metadata[key] = alignment
        elif value_type == GGUFValueType.ARRAY:
            metadata[key] = _read_array(cursor, key)
        else:
            metadata[key] = _read_scalar(cursor, value_type, key)
    return metadata, alignment


def _read_alignment(cursor: _Cursor, value_type: GGUFValueType) -> int:
    offset = cursor.pos
    if value_type != GGUFValueType.UINT32:
        raise cursor.fail(f"{Keys.General.ALIGNMENT} must be UINT32, not {value_type.name}")
    alignment = cursor.u32(Keys.General.ALIGNMENT)
    if alignment == 0 or alignment & (alignment - 1):
        raise cursor.fail(f"{Keys.General.ALIGNMENT} {alignment} is not a power of 2", offset)
    return alignment


def _read_scalar(cursor: _Cursor, value_type: GGUFValueType, key: str) -> MetadataValue:
    if value_type == GGUFValueType.STRING:
        length = _read_string_length(cursor, f"value of {_quote(key)}", MAX_STRING_BYTES)
        if length > MAX_KEPT_STRING:
            cursor.skip(length, f"value of {_quote(key)}")
            return length
        return cursor.take(length, f"value of {_quote(key)}").decode("utf-8", "replace")
    fmt = _SCALAR_FORMATS[value_type]
    value = fmt.unpack(cursor.take(fmt.size, f"value of {_quote(key)}"))[0]
    return bool(value) if value_type == GGUFValueType.BOOL else value


def _read_array(cursor: _Cursor, key: str) -> MetadataValue:
    element_type = _read_value_type(cursor, f"element type of {_quote(key)}")
    if element_type == GGUFValueType.ARRAY:
        raise cursor.fail(f"{_quote(key)} is an array of arrays, which llama.cpp does not accept")
    count_offset = cursor.pos
    count = cursor.u64(f"length of {_quote(key)}")
    min_size = 8 if element_type == GGUFValueType.STRING else _SCALAR_FORMATS[element_type].size
    remaining = cursor.remaining()
    if count > MAX_ARRAY_ELEMENTS or (remaining is not None and count * min_size > remaining):
        raise cursor.fail(
            f"array {_quote(key)} claims {count} elements, more than the file can hold",
            count_offset,
        )
    if element_type == GGUFValueType.STRING:
        cursor.skip_strings(count, f"a string in array {_quote(key)}")
        return count
    fmt = _SCALAR_FORMATS[element_type]
    if count > MAX_KEPT_ARRAY:
        cursor.skip(count * fmt.size, f"array {_quote(key)}")
        return count
    raw = cursor.take(count * fmt.size, f"array {_quote(key)}")
    values = [item[0] for item in fmt.iter_unpack(raw)]
    if element_type == GGUFValueType.BOOL:
        return [bool(value) for value in values]
    return values


def _read_tensor_info(cursor: _Cursor, index: int) -> tuple[GGUFTensorInfo, int]:
    """One tensor info; returns it (offset still relative) and where it starts in the file."""
    start = cursor.pos
    # Its length is checked against ggml's limit before a byte of it is read: a hostile
    # length (250,000,000) must not be fetched only to be refused.
    name = _read_string(cursor, f"name of tensor #{index}", MAX_TENSOR_NAME_BYTES)
    n_dims_offset = cursor.pos
    n_dims = cursor.u32(f"n_dims of tensor {_quote(name)}")
    if n_dims > MAX_DIMS:
        raise cursor.fail(
            f"tensor {_quote(name)} has {n_dims} dimensions (max {MAX_DIMS})", n_dims_offset
        )
    shape: list[int] = []
    n_elements = 1
    for axis in range(n_dims):
        dim_offset = cursor.pos
        dim = cursor.i64(f"shape of tensor {_quote(name)}")
        if dim <= 0:
            raise cursor.fail(f"tensor {_quote(name)} has dimension {axis} = {dim}", dim_offset)
        if n_elements > INT64_MAX // dim:
            raise cursor.fail(f"tensor {_quote(name)} has more than 2^63 elements", dim_offset)
        n_elements *= dim
        shape.append(dim)
    type_offset = cursor.pos
    type_id = cursor.u32(f"type of tensor {_quote(name)}")
    type_info = ggml_type_info(type_id)
    if type_info is None:
        raise cursor.fail(f"tensor {_quote(name)} has unknown ggml type id {type_id}", type_offset)
    type_name, block_size, type_size = type_info
    row = shape[0] if shape else 1
    if row % block_size:
        raise cursor.fail(
            f"tensor {_quote(name)} of type {type_name} has rows of {row} elements, "
            f"not a multiple of the block size {block_size}",
            type_offset,
        )
    relative = cursor.u64(f"offset of tensor {_quote(name)}")
    info = GGUFTensorInfo(
        name=name,
        type=type_name,
        shape=tuple(shape),
        n_bytes=n_elements // block_size * type_size,
        offset=relative,
    )
    return info, start


def _place_tensors(
    cursor: _Cursor,
    infos: list[tuple[GGUFTensorInfo, int]],
    data_offset: int,
    alignment: int,
) -> tuple[GGUFTensorInfo, ...]:
    """Check each tensor's data range the way gguf.cpp does and make its offset absolute.

    llama.cpp requires tensors to be packed in header order, each at the running total of the
    padded sizes before it; anything else is misaligned, overlapping or leaves a gap.
    """
    placed: list[GGUFTensorInfo] = []
    seen: set[str] = set()
    expected = 0
    previous = ""
    for info, info_offset in infos:
        if info.name in seen:
            raise cursor.fail(f"duplicate tensor name {_quote(info.name)}", info_offset)
        seen.add(info.name)
        if info.offset % alignment:
            problem = f"is not aligned to {alignment} bytes"
        elif info.offset < expected:
            problem = f"overlaps the data of {_quote(previous)}"
        elif info.offset > expected:
            problem = (
                f"leaves a gap of {info.offset - expected} bytes after {previous or 'start'!r}"
            )
        else:
            problem = ""
        if problem:
            raise cursor.fail(
                f"tensor {_quote(info.name)} data offset {info.offset} {problem} "
                f"(expected {expected})",
                info_offset,
            )
        end = data_offset + info.offset + info.n_bytes
        if cursor.size is not None and end > cursor.size:
            raise cursor.fail(
                f"tensor {_quote(info.name)} data ends at byte {end}, past the end of the file "
                f"({cursor.size} bytes; truncated?)",
                info_offset,
            )
        placed.append(info.model_copy(update={"offset": data_offset + info.offset}))
        expected = info.offset + _align(info.n_bytes, alignment)
        previous = info.name
    return tuple(placed)
