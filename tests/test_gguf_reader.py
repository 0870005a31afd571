"""The GGUF header reader against gguf-py's reader, the file's own bytes and hostile headers."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from gguf import GGUFReader, GGUFValueType

from solver.errors import GGUFError
from solver.gguf.reader import (
    MAX_KEPT_ARRAY,
    MAX_WINDOW,
    GGUFHeader,
    LocalFileSource,
    read_header,
    read_local_header,
)
from tests.gemma_reference import gguf_py_reader
from tests.gguf_bytes import (
    f32_tensor,
    gguf_string,
    kv_str,
    kv_u32,
    kv_u32_array,
    raw_gguf,
    tensor_info,
)


class BytesSource:
    """An in-memory ``ByteSource``; ``known_size=False`` hides the size like a stream."""

    def __init__(self, data: bytes, known_size: bool = True) -> None:
        self.data = data
        self.known_size = known_size
        self.bytes_read = 0

    @property
    def size(self) -> int | None:
        return len(self.data) if self.known_size else None

    def read(self, offset: int, size: int) -> bytes:
        chunk = self.data[offset : offset + size]
        self.bytes_read += len(chunk)
        return chunk


def parse(data: bytes, known_size: bool = True) -> GGUFHeader:
    return read_header(BytesSource(data, known_size), "test.gguf")


def refused(data: bytes, fragment: str, known_size: bool = True) -> GGUFError:
    with pytest.raises(GGUFError) as caught:
        parse(data, known_size)
    assert fragment in str(caught.value), str(caught.value)
    assert str(caught.value).startswith("test.gguf: ")
    return caught.value


def _padded(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


# --- the real gemma file ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma_header(gemma_gguf: Path) -> tuple[GGUFHeader, int]:
    return read_local_header(gemma_gguf)


@pytest.fixture(scope="module")
def reference(gemma_gguf: Path) -> GGUFReader:
    return gguf_py_reader(gemma_gguf)


def test_gemma_tensors_match_gguf_py(gemma_header, reference: GGUFReader) -> None:
    header, _ = gemma_header
    assert len(header.tensors) == len(reference.tensors) == 236
    for ours, theirs in zip(header.tensors, reference.tensors, strict=True):
        assert ours.name == theirs.name
        assert ours.type == theirs.tensor_type.name
        assert list(ours.shape) == [int(d) for d in theirs.shape]
        assert ours.n_bytes == int(theirs.n_bytes)
        assert ours.offset == int(theirs.data_offset)


def test_gemma_data_section_fills_the_file(gemma_gguf: Path, gemma_header) -> None:
    header, _ = gemma_header
    padded = sum(_padded(t.n_bytes, header.alignment) for t in header.tensors)
    assert header.data_offset + padded == gemma_gguf.stat().st_size == header.file_size
    assert header.data_offset == _padded(header.header_size, header.alignment)


def test_gemma_metadata_matches_gguf_py(gemma_header, reference: GGUFReader) -> None:
    header, _ = gemma_header
    keys = [k for k in reference.fields if not k.startswith("GGUF.")]
    assert list(header.metadata) == keys
    for key in keys:
        field = reference.fields[key]
        ours = header.metadata[key]
        if field.types[0] == GGUFValueType.ARRAY:
            # String arrays and long arrays keep only their length.
            assert ours == len(field.data), key
        else:
            assert ours == pytest.approx(field.contents()), key


def test_gemma_reads_little_more_than_the_header(gemma_header) -> None:
    header, bytes_read = gemma_header
    assert header.header_size <= bytes_read <= header.header_size + MAX_WINDOW


def test_unknown_size_source_reads_the_same(gemma_gguf: Path, gemma_header) -> None:
    header, _ = gemma_header
    data = gemma_gguf.read_bytes()[: header.data_offset + 4096]
    streamed = read_header(BytesSource(data, known_size=False), "stream")
    assert streamed.tensors == header.tensors
    assert streamed.metadata == header.metadata


# --- well-formed raw files -------------------------------------------------------------------


def small_file(**kw) -> bytes:
    info, size = f32_tensor("a.weight", (8, 2), 0)
    info_b, size_b = f32_tensor("b.weight", (3,), 64)
    return raw_gguf(
        [kv_str("general.architecture", "llama"), kv_u32_array("per_layer", [1, 2, 3])],
        [info, info_b],
        data=b"\1" * size + b"\0" * (64 - size) + b"\2" * size_b,
        **kw,
    )


def test_small_file_parses() -> None:
    header = parse(small_file())
    assert [t.name for t in header.tensors] == ["a.weight", "b.weight"]
    assert [t.n_bytes for t in header.tensors] == [64, 12]
    assert header.tensors[1].offset == header.data_offset + 64
    assert header.metadata["per_layer"] == [1, 2, 3]


def test_long_arrays_and_string_arrays_keep_only_their_length() -> None:
    long_numbers = kv_u32_array("scores", list(range(MAX_KEPT_ARRAY + 1)))
    strings = gguf_string("tokens") + struct.pack("<IIQ", 9, 8, 3)
    strings += b"".join(gguf_string(s) for s in ("a", "bb", "ccc"))
    header = parse(raw_gguf([long_numbers, strings]))
    assert header.metadata == {"scores": MAX_KEPT_ARRAY + 1, "tokens": 3}


def test_v2_is_read() -> None:
    assert parse(small_file(version=2)).version == 2


# --- hostile and broken headers -------------------------------------------------------------


def test_truncated_everywhere_is_refused() -> None:
    data = small_file()
    header = parse(data)
    for cut in range(header.data_offset + 64):
        refused(data[:cut], "")
    refused(data[:-1], "past the end of the file")


def test_wrong_magic() -> None:
    refused(b"GGML" + small_file()[4:], "not a GGUF file")


@pytest.mark.parametrize(
    ("version", "fragment"),
    [(1, "unsupported GGUF version 1"), (4, "unsupported GGUF version 4"), (0x03000000, "big")],
)
def test_unsupported_versions(version: int, fragment: str) -> None:
    refused(small_file(version=version), fragment)


@pytest.mark.parametrize("known_size", [True, False])
def test_2_to_the_60_tensors_refused_at_once(known_size: bool) -> None:
    error = refused(raw_gguf(n_tensors=2**60), "tensor count", known_size)
    assert error.offset == 8


def test_tensor_count_beyond_the_file_refused() -> None:
    refused(raw_gguf(n_tensors=1000), "needs at least")


@pytest.mark.parametrize("known_size", [True, False])
def test_2_to_the_40_byte_string_refused_at_once(known_size: bool) -> None:
    padding = b"\0" * 64  # enough bytes that the key/value count itself is plausible
    huge_key = struct.pack("<Q", 2**40) + b"k" + padding
    refused(raw_gguf([huge_key]), "key #0 is 1099511627776 bytes", known_size)
    huge_value = gguf_string("k") + struct.pack("<IQ", GGUFValueType.STRING, 2**40) + padding
    refused(raw_gguf([huge_value]), "is 1099511627776 bytes long", known_size)


def test_huge_array_refused() -> None:
    array = gguf_string("k") + struct.pack("<IIQ", GGUFValueType.ARRAY, 4, 2**62)
    refused(raw_gguf([array]), "claims 4611686018427387904 elements")


def test_five_dimensions_refused() -> None:
    refused(raw_gguf([], [tensor_info("t", (1, 1, 1, 1, 1), 0, 0)]), "5 dimensions")


@pytest.mark.parametrize("dim", [0, -1])
def test_non_positive_dimension_refused(dim: int) -> None:
    refused(raw_gguf([], [tensor_info("t", (4, dim), 0, 0)]), f"dimension 1 = {dim}")


def test_element_count_overflow_refused() -> None:
    refused(raw_gguf([], [tensor_info("t", (2**32, 2**32), 0, 0)]), "more than 2^63 elements")


def test_unknown_type_id_refused() -> None:
    refused(raw_gguf([], [tensor_info("t", (4,), 99, 0)]), "unknown ggml type id 99")


def test_row_not_multiple_of_block_refused() -> None:
    refused(raw_gguf([], [tensor_info("t", (100, 2), 12, 0)]), "not a multiple of the block size")


def test_tensor_name_too_long_refused() -> None:
    refused(raw_gguf([], [tensor_info("x" * 64, (4,), 0, 0)]), "is 64 bytes long (limit 63)")
    assert parse(raw_gguf([], [tensor_info("x" * 63, (8,), 0, 0)], data=b"\0" * 32)).tensors


def test_huge_tensor_name_length_refused_before_reading_it(tmp_path: Path) -> None:
    """A name length of 250,000,000 in a file that has the bytes: refused from the length
    alone, having read one window, not the 250 MB (issue 15: 1 GB RSS, 249 MB over hf://)."""
    length = 250_000_000
    info = struct.pack("<Q", length) + b"x" * 64
    path = tmp_path / "long-name.gguf"
    path.write_bytes(raw_gguf([], [info]))
    os.truncate(path, length + 4096)  # sparse: the bytes are there, as far as the reader knows
    with LocalFileSource(path) as source:
        with pytest.raises(GGUFError, match="name of tensor #0 is 250000000 bytes long"):
            read_header(source, str(path))
        assert source.bytes_read <= MAX_WINDOW


def test_duplicate_key_refused() -> None:
    refused(raw_gguf([kv_u32("a", 1), kv_u32("a", 2)]), "duplicate key 'a'")


def test_empty_key_refused() -> None:
    refused(raw_gguf([kv_u32("", 1)]), "key #0 is empty")


def test_unknown_value_type_refused() -> None:
    bad = gguf_string("a") + struct.pack("<I", 13) + b"\0" * 8
    refused(raw_gguf([bad]), "unknown GGUF value type 13")


def test_array_of_arrays_refused() -> None:
    nested = gguf_string("a") + struct.pack("<II", GGUFValueType.ARRAY, GGUFValueType.ARRAY)
    refused(raw_gguf([nested + b"\0" * 16]), "array of arrays")


@pytest.mark.parametrize("alignment", [0, 3, 48])
def test_alignment_not_power_of_two_refused(alignment: int) -> None:
    refused(raw_gguf([kv_u32("general.alignment", alignment)]), "not a power of 2")


def test_alignment_of_wrong_type_refused() -> None:
    refused(raw_gguf([kv_str("general.alignment", "32")]), "must be UINT32")


def test_custom_alignment_is_used() -> None:
    info, size = f32_tensor("a", (4,), 0)
    header = parse(
        raw_gguf([kv_u32("general.alignment", 64)], [info], data=b"\0" * size, alignment=64)
    )
    assert header.alignment == 64 and header.data_offset % 64 == 0


@pytest.mark.parametrize(
    ("names", "elements", "second_offset", "data_bytes", "message"),
    [
        (("t", "t"), 8, 32, 64, "duplicate tensor name 't'"),
        (("a", "b"), 16, 32, 128, "overlaps the data of 'a'"),
        (("a", "b"), 8, 64, 128, "leaves a gap of 32 bytes"),
        (("a", "b"), 8, 33, 128, "not aligned to 32"),
    ],
    ids=["duplicate-name", "overlapping-data", "gap-between", "misaligned"],
)
def test_two_tensors_that_do_not_tile_the_data_are_refused(
    names: tuple[str, str], elements: int, second_offset: int, data_bytes: int, message: str
) -> None:
    a, _ = f32_tensor(names[0], (elements,), 0)
    b, _ = f32_tensor(names[1], (elements,), second_offset)
    refused(raw_gguf([], [a, b], data=b"\0" * data_bytes), message)


def test_data_past_the_end_refused() -> None:
    a, _ = f32_tensor("a", (1024,), 0)
    refused(raw_gguf([], [a], data=b"\0" * 16), "past the end of the file")


def test_missing_file_is_a_gguf_error(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="cannot open"):
        read_local_header(tmp_path / "absent.gguf")
