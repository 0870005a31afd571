"""DeepSeek V4's memory (``llama_kv_cache_dsv4``, ``src/llama-kv-cache-dsv4.cpp``) as the
tensors it allocates per layer.

Its constructor builds seven caches, each a ``llama_kv_cache`` (or a compressor state) over
the layers its filter keeps, on the layer's device (the CPU with ``-nkvo``), one buffer per
buffer type; every cache keeps a stream per sequence whatever ``--kv-unified`` says
(``unified_raw`` / ``unified_compressed`` are false), and every K cache is K-only
(``dsv4_make_k_only`` makes its hparams look like MLA):

1. ``swa``: the raw cache, a ``llama_kv_cache_iswa`` whose full-attention half is empty (every
   layer is sliding-window, ``set_swa_pattern(0)``): ``n_swa + n_ubatch`` cells padded to 256
   (at most ``n_ctx_seq``; ``--swa-full`` keeps ``n_ctx_seq``; the workload's
   ``kv_cells_swa``, which counts one window per stream for deepseek4), K one head wide;
2. ``csa`` (ratio-4 layers), ``hca`` (ratio-128 layers): K of the compressed positions,
   ``ceil(n_ctx_seq / ratio)`` cells padded to 256;
3. ``lid``: the lightning indexer's compressed K on the ratio-4 layers, ``indexer_head_size``
   wide, as many cells as ``csa``;
4. ``csa_state``, ``hca_state``, ``lid_state`` (``llama_dsv4_comp_state``): per layer an F32 KV
   and an F32 score tensor ``[n_embd_state, state_size, n_seq_max * (1 + n_rs_seq)]``: 2 x ratio
   rows of twice the head for the overlapping ratio-4 windows, ratio rows of one head at 128,
   2 x 4 rows of twice the indexer head. ``n_rs_seq`` (speculative rollback) is 0: fit refuses
   the speculative options that would set it.

The log names the caches in its "creating DSV4 ..." lines; the states' buffers are
``DSV4 <name> state`` lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from solver.ggml.dtypes import pad
from solver.llama.hparams import ModelHparams
from solver.llama.workload import GGML_KQ_PAD, ComputeWorkload

CSA_RATIO, HCA_RATIO = 4, 128  # DSV4_CSA_RATIO, DSV4_HCA_RATIO (src/models/deepseek4.cpp)
STATE_TYPE = "F32"
K_SLOT, V_SLOT = 1, 2  # which of KvBuffer's k_bytes / v_bytes a tensor counts in


@dataclass(frozen=True)
class Dsv4Cache:
    """One of the seven caches: its name (``KvBuffer.cache``), which layers it holds, and the
    tensors of each such layer as (slot, ggml type, shape)."""

    name: str
    layers: tuple[bool, ...]
    tensors: tuple[tuple[int, str, tuple[int, ...]], ...]


def dsv4_caches(hparams: ModelHparams, workload: ComputeWorkload) -> list[Dsv4Cache]:
    """The caches in the order llama_kv_cache_dsv4's constructor allocates them."""
    streams = workload.n_seq_max
    ratios: Sequence[int] = hparams.compress_ratios
    trunk = tuple(hparams.layer_has_kv(il) for il in range(hparams.n_layer_all))
    csa = tuple(t and ratios[il] == CSA_RATIO for il, t in enumerate(trunk))
    hca = tuple(t and ratios[il] == HCA_RATIO for il, t in enumerate(trunk))
    head = hparams.layers[0].head_k  # n_embd_head_k(): every layer is sliding-window
    width = hparams.layers[0].k_width

    def k_cache(name: str, layers: tuple[bool, ...], k_width: int, cells: int) -> Dsv4Cache:
        return Dsv4Cache(name, layers, ((K_SLOT, workload.type_k, (k_width, cells, streams)),))

    def state(name: str, layers: tuple[bool, ...], rows: int, n_embd: int) -> Dsv4Cache:
        shape = (n_embd, rows, streams)
        return Dsv4Cache(name, layers, ((K_SLOT, STATE_TYPE, shape), (V_SLOT, STATE_TYPE, shape)))

    indexer = hparams.indexer_head_size
    return [
        k_cache("swa", trunk, width, workload.kv_cells_swa),
        k_cache("csa", csa, width, compressed_cells(workload.n_ctx_seq, CSA_RATIO)),
        k_cache("hca", hca, width, compressed_cells(workload.n_ctx_seq, HCA_RATIO)),
        k_cache("lid", csa, indexer, compressed_cells(workload.n_ctx_seq, CSA_RATIO)),
        state("csa_state", csa, state_size(CSA_RATIO), 2 * head),
        state("hca_state", hca, state_size(HCA_RATIO), head),
        state("lid_state", csa, state_size(CSA_RATIO), 2 * indexer),
    ]


def state_size(ratio: int) -> int:
    """Rows of a compressor state per stream: 2 x ratio for the overlapping ratio-4 windows
    (the previous window's rows beside the current one's), ratio at 128."""
    return 2 * ratio if ratio == CSA_RATIO else ratio


def compressed_cells(n_ctx_seq: int, ratio: int) -> int:
    """GGML_PAD(dsv4_comp_size(kv_size, ratio), 256): max(1, ceil(kv_size / ratio))."""
    return pad(max(1, -(-n_ctx_seq // ratio)), GGML_KQ_PAD)
