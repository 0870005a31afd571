"""KV cache bytes per device, as ``llama_kv_cache`` / ``llama_kv_cache_iswa`` allocate them.

Pinned ``src/llama-kv-cache.cpp``: for every layer that has KV (and passes the model's layer
filter), K is a ``type_k`` tensor of ``[n_embd_k_gqa(il), kv_size, n_stream]`` and V (absent
for MLA) a ``type_v`` tensor of ``[n_embd_v_gqa(il), kv_size, n_stream]``; with V stored
transposed (flash attention off) every V row is ``n_embd_v_gqa_max()`` wide. Each layer's
tensors go to its device's default buffer type (CPU with ``-nkvo``); one buffer per buffer
type holds the sum of the tensors' alloc sizes, each padded to the buffer's alignment.

``llama_kv_cache_iswa`` builds two such caches: the full layers with ``n_ctx_seq`` cells,
the sliding-window layers with ``kv_cells_swa`` cells; the log prints a line per buffer of
each. ``llama_kv_cache_dsa`` (deepseek32, glm-dsa) too: the MLA cache ("main"), then the
lightning indexer's ("indexer", cache ``lid``), both of ``n_ctx_seq`` cells, the indexer's K
one head of ``indexer_head_size`` in ``type_k`` on each layer with a full indexer
(``ModelHparams.lid_layers``: glm-dsa's "shared" layers have none), no V (the model is MLA).
``llama_memory_hybrid_idx`` (glm5-next) is the hybrid's attention cache and recurrent state
plus such an indexer cache (``lid``) on its full-indexer layers, each row
``indexer_cache_width`` wide (key | gate | pooled key).
``llama_kv_cache_msa`` (minimax-m3) likewise: the K/V cache of every layer ("main"), then the
MSA indexer's ("indexer", cache ``lid``) of the layers past the leading dense ones: a plain
``llama_kv_cache`` over hparams of one KV head with K ``indexer_head_size`` wide, so it also
holds a V of one ``n_embd_head_v`` head (``type_v``) per layer, which nothing reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from solver.ggml import dtypes as ggml_types
from solver.llama.device_map import CPU_BUFFER, BufferType
from solver.llama.hparams import MemoryKind, ModelHparams
from solver.llama.kv_dsv4 import Dsv4Cache, dsv4_caches
from solver.llama.workload import ComputeWorkload
from solver.quantities import CPU

RECURRENT_TYPE = "F32"  # create_memory passes GGML_TYPE_F32 for both R and S


class KvBuffer(BaseModel):
    """One ``llama_kv_cache: <buffer> KV buffer size`` line, or for ``cache='rs'`` one
    ``llama_memory_recurrent: <buffer> RS buffer size`` line (k_bytes = R, v_bytes = S)."""

    model_config = ConfigDict(frozen=True)

    cache: str = Field(
        description="'base' (full attention), 'swa', 'lid' (an indexer's), 'rs' (recurrent) "
        "or a DSV4 cache (solver.llama.kv_dsv4: 'csa', 'hca', 'csa_state', ...)"
    )
    buffer_type: str
    device: str
    size: int = Field(description="bytes")
    k_bytes: int
    v_bytes: int


def kv_buffers(
    hparams: ModelHparams,
    workload: ComputeWorkload,
    layer_kv_devices: Sequence[str | None],
    device_bufts: Mapping[str, BufferType],
) -> tuple[KvBuffer, ...]:
    """All KV buffers of a launch. ``device_bufts`` maps offload devices to their buffer types."""
    if hparams.memory in (MemoryKind.NONE, MemoryKind.RECURRENT):
        return ()
    if hparams.memory is MemoryKind.DSV4:
        return _dsv4_buffers(dsv4_caches(hparams, workload), layer_kv_devices, device_bufts)
    caches = [("base", workload.n_ctx_seq, False)]
    if hparams.memory is MemoryKind.ISWA:
        caches.append(("swa", workload.kv_cells_swa, True))
    if any(hparams.lid_layers):
        caches.append(("lid", workload.n_ctx_seq, False))
    buffers = []
    for cache, kv_size, swa in caches:
        sums: dict[str, list[int]] = {}
        for il, device in enumerate(layer_kv_devices):
            if device is None or (cache == "lid" and not hparams.layer_has_indexer(il)):
                continue
            if hparams.memory is MemoryKind.ISWA and hparams.layers[il].is_swa != swa:
                continue
            buft = CPU_BUFFER if device == CPU else device_bufts[device]
            if cache == "lid":
                alloc, k_size, v_size = _indexer_tensor(hparams, workload, kv_size, buft)
            else:
                alloc, k_size, v_size = _layer_tensors(hparams, workload, il, kv_size, buft)
            entry = sums.setdefault(buft.name, [0, 0, 0])
            entry[0] += alloc
            entry[1] += k_size
            entry[2] += v_size
        buffers += _cache_buffers(cache, sums, device_bufts)
    return tuple(buffers)


def _dsv4_buffers(
    caches: Sequence[Dsv4Cache],
    layer_kv_devices: Sequence[str | None],
    device_bufts: Mapping[str, BufferType],
) -> tuple[KvBuffer, ...]:
    """``llama_kv_cache_dsv4``'s buffers (``solver.llama.kv_dsv4``): cache by cache, one
    buffer per buffer type (by name, as each cache's std::map orders them)."""
    buffers = []
    for cache in caches:
        sums: dict[str, list[int]] = {}
        for il, device in enumerate(layer_kv_devices):
            if device is None or not cache.layers[il]:
                continue
            buft = CPU_BUFFER if device == CPU else device_bufts[device]
            entry = sums.setdefault(buft.name, [0, 0, 0])
            for slot, type_name, shape in cache.tensors:
                size = ggml_types.n_bytes(type_name, shape)
                entry[0] += buft.alloc_size(type_name, shape, size)
                entry[slot] += size
        buffers += _cache_buffers(cache.name, sums, device_bufts)
    return tuple(buffers)


def _cache_buffers(
    cache: str, sums: Mapping[str, Sequence[int]], device_bufts: Mapping[str, BufferType]
) -> list[KvBuffer]:
    """One cache's buffers from its ``[allocated, K bytes, V bytes]`` per buffer type name,
    ordered by that name as llama_kv_cache's std::map (strcmp) orders them."""
    buffers = []
    for name in sorted(sums):
        size, k_bytes, v_bytes = sums[name]
        device = CPU if name == CPU else _device_of(name, device_bufts)
        buffers.append(
            KvBuffer(
                cache=cache,
                buffer_type=name,
                device=device,
                size=size,
                k_bytes=k_bytes,
                v_bytes=v_bytes,
            )
        )
    return buffers


def _layer_tensors(
    hparams: ModelHparams, workload: ComputeWorkload, il: int, kv_size: int, buft: BufferType
) -> tuple[int, int, int]:
    """Layer ``il``'s K and V tensors of ``kv_size`` cells in ``buft``: (alloc bytes, K bytes,
    V bytes). V is absent for MLA; stored transposed (no flash attention) it is
    ``n_embd_v_gqa_max()`` wide."""
    layer = hparams.layers[il]
    k_shape = (layer.k_width, kv_size, workload.n_stream)
    k_size = ggml_types.n_bytes(workload.type_k, k_shape)
    alloc = buft.alloc_size(workload.type_k, k_shape, k_size)
    v_size = 0
    if not hparams.is_mla:
        v_width = hparams.v_width_max if workload.v_trans else layer.v_width
        v_shape = (v_width, kv_size, workload.n_stream)
        v_size = ggml_types.n_bytes(workload.type_v, v_shape)
        alloc += buft.alloc_size(workload.type_v, v_shape, v_size)
    return alloc, k_size, v_size


def _indexer_tensor(
    hparams: ModelHparams, workload: ComputeWorkload, kv_size: int, buft: BufferType
) -> tuple[int, int, int]:
    """A layer's indexer K (llama_kv_cache_dsa's hparams_lid, llama_memory_hybrid_idx's and
    llama_kv_cache_msa's hparams_idx: one KV head of ``indexer_cache_width``) and, for MSA's
    plain cache, V (one ``n_embd_head_v`` head, also when transposed: the widest layer's one
    head): (alloc bytes, K bytes, V bytes)."""
    shape = (hparams.indexer_cache_width, kv_size, workload.n_stream)
    size = ggml_types.n_bytes(workload.type_k, shape)
    alloc = buft.alloc_size(workload.type_k, shape, size)
    v_size = 0
    if hparams.memory is MemoryKind.MSA:
        v_shape = (hparams.n_embd_head_v, kv_size, workload.n_stream)
        v_size = ggml_types.n_bytes(workload.type_v, v_shape)
        alloc += buft.alloc_size(workload.type_v, v_shape, v_size)
    return alloc, size, v_size


def layer_kv_bytes(hparams: ModelHparams, workload: ComputeWorkload) -> tuple[int, ...]:
    """KV cache bytes of each layer on the host buffer (0 for a layer without a cache): the
    per-layer term of ``kv_buffers``, in one pass. A layer's K and V are padded on their own,
    so these sum to the CPU buffer of any set of layers; the placement model relies on it."""
    if hparams.memory in (MemoryKind.NONE, MemoryKind.RECURRENT):
        return (0,) * hparams.n_layer_all
    if hparams.memory is MemoryKind.DSV4:
        return _dsv4_layer_bytes(dsv4_caches(hparams, workload), hparams.n_layer_all)
    sizes = []
    for il in range(hparams.n_layer_all):
        if not hparams.layer_has_kv(il):
            sizes.append(0)
            continue
        swa = hparams.memory is MemoryKind.ISWA and hparams.layers[il].is_swa
        kv_size = workload.kv_cells_swa if swa else workload.n_ctx_seq
        size, _, _ = _layer_tensors(hparams, workload, il, kv_size, CPU_BUFFER)
        if hparams.layer_has_indexer(il):
            size += _indexer_tensor(hparams, workload, kv_size, CPU_BUFFER)[0]
        sizes.append(size)
    return tuple(sizes)


def _dsv4_layer_bytes(caches: Sequence[Dsv4Cache], n_layer_all: int) -> tuple[int, ...]:
    """Each layer's tensors of every DSV4 cache on the host buffer."""
    sizes = [0] * n_layer_all
    for cache in caches:
        for il in range(n_layer_all):
            if cache.layers[il]:
                for _, type_name, shape in cache.tensors:
                    size = ggml_types.n_bytes(type_name, shape)
                    sizes[il] += CPU_BUFFER.alloc_size(type_name, shape, size)
    return tuple(sizes)


def recurrent_buffers(
    hparams: ModelHparams,
    workload: ComputeWorkload,
    layer_rs_devices: Sequence[str | None],
    device_bufts: Mapping[str, BufferType],
) -> tuple[KvBuffer, ...]:
    """``llama_memory_recurrent``: per layer an F32 R tensor ``[n_embd_r, cells]`` and an F32
    S tensor ``[n_embd_s, cells]``, cells = max(1, n_seq_max) (no rollback snapshots)."""
    cells = max(1, workload.n_seq_max)
    r_shape = (hparams.n_embd_r, cells)
    s_shape = (hparams.n_embd_s, cells)
    r_size = ggml_types.n_bytes(RECURRENT_TYPE, r_shape)
    s_size = ggml_types.n_bytes(RECURRENT_TYPE, s_shape)
    sums: dict[str, list[int]] = {}
    for device in layer_rs_devices:
        if device is None:
            continue
        buft = CPU_BUFFER if device == CPU else device_bufts[device]
        entry = sums.setdefault(buft.name, [0, 0, 0])
        entry[0] += buft.alloc_size(RECURRENT_TYPE, r_shape, r_size)
        entry[0] += buft.alloc_size(RECURRENT_TYPE, s_shape, s_size)
        entry[1] += r_size
        entry[2] += s_size
    return tuple(
        KvBuffer(
            cache="rs",
            buffer_type=name,
            device=CPU if name == CPU else _device_of(name, device_bufts),
            size=size,
            k_bytes=r_bytes,
            v_bytes=s_bytes,
        )
        for name, (size, r_bytes, s_bytes) in sorted(sums.items())
    )


def memory_buffers(
    hparams: ModelHparams,
    workload: ComputeWorkload,
    layer_kv_devices: Sequence[str | None],
    layer_rs_devices: Sequence[str | None],
    device_bufts: Mapping[str, BufferType],
) -> tuple[KvBuffer, ...]:
    """Every KV and recurrent-state buffer of a launch, in the order llama.cpp allocates
    them: the KV caches, then the recurrent state; llama_memory_hybrid_idx builds its
    indexer cache (``lid``) after the hybrid's two."""
    kv = kv_buffers(hparams, workload, layer_kv_devices, device_bufts)
    rs = recurrent_buffers(hparams, workload, layer_rs_devices, device_bufts)
    if hparams.memory is not MemoryKind.HYBRID_IDX:
        return kv + rs
    lid = tuple(b for b in kv if b.cache == "lid")
    return tuple(b for b in kv if b.cache != "lid") + rs + lid


def _device_of(buffer_type: str, device_bufts: Mapping[str, BufferType]) -> str:
    return next(dev for dev, buft in device_bufts.items() if buft.name == buffer_type)
