"""Where llama.cpp puts every weight and every layer's KV cache, and how big each buffer is.

This mirrors ``llama_model_base::load_tensors`` and ``llama_model_loader::create_tensor`` of
the pinned llama.cpp, step by step:

1. Devices (``llama_prepare_model_devices``): RPC servers first, in ``--rpc`` order, then
   GPUs; ``-dev`` replaces that list; ``-sm none`` keeps only ``-mg``'s device.
2. Layers (``load_tensors``): the last ``-ngl`` layers go to the devices,
   ``i_gpu_start = max(n_layer + 1 - ngl, 0)``, split by ``-ts`` (or free memory) with the
   same float32 cumulative split and ``upper_bound``; the output head is layer ``n_layer``;
   the input layer (token embeddings) always stays on the CPU.
3. Buffer type per tensor (``create_tensor``): the first ``-ot`` rule whose regex is found in
   the name wins (a ``CPU`` rule goes through the CPU list so it can still repack); otherwise
   the first buffer type of the layer's list that supports the tensor's op. The CPU list is
   [host buffer of the first GPU (CUDA_Host) unless --no-host] + [AMX, CPU_REPACK unless
   --no-repack] + [CPU]. With mmap a host buffer becomes plain CPU.
4. Buffers: tensors of one buffer type share one buffer. A CPU buffer with mmap maps the file
   range from its first to its last tensor (``CPU_Mapped``, gaps included); every other
   buffer is the sum of each tensor's ``get_alloc_size`` padded to the type's alignment.

Tied embeddings (no ``output.weight``) load ``token_embd.weight`` a second time for the
output head unless it lands in the same buffer type; ``rope_freqs``-style tensors are loaded
once per buffer type their layers use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from solver.errors import BadInput
from solver.ggml import dtypes as ggml_types
from solver.gguf.inventory import Inventory, Tensor
from solver.llama.args import LaunchConfig, rpc_buffer_names
from solver.llama.hparams import ModelHparams, model_hparams
from solver.quantities import CPU

CPU_MAPPED = "CPU_Mapped"
CPU_REPACK = "CPU_REPACK"
AMX = "AMX"
CUDA_HOST = "CUDA_Host"
TENSOR_ALIGNMENT = 32  # ggml-impl.h: CPU, CPU_REPACK, AMX, CUDA_Host
CUDA_ALIGNMENT = 128  # ggml_backend_cuda_buffer_type_get_alignment
MATRIX_ROW_PADDING = 512  # ggml-cuda/common.cuh


# --- CPU features that decide repacking -------------------------------------------------


class CpuFeatures(BaseModel):
    """The CPU backend features that decide which weights get an extra (repacked) buffer.

    Names as llama.cpp's ``system_info`` prints them. Only the x86 rules of
    ``ggml_repack_get_optimal_repack_type`` are modelled.
    """

    model_config = ConfigDict(frozen=True)

    avx2: bool = False
    avx512: bool = False
    amx_int8: bool = False
    repack: bool = Field(default=True, description="built with GGML_CPU_REPACK")

    @classmethod
    def from_system_info(cls, line: str) -> CpuFeatures:
        """Parse ``system_info: ... | CPU : SSE3 = 1 | AVX2 = 1 | ... | REPACK = 1 |``."""
        flags = dict(re.findall(r"([A-Z0-9_]+) = (\d)", line))
        return cls(
            avx2=flags.get("AVX2") == "1",
            avx512=flags.get("AVX512") == "1",
            amx_int8=flags.get("AMX_INT8") == "1",
            repack=flags.get("REPACK") == "1",
        )

    @classmethod
    def from_names(cls, names: str) -> CpuFeatures:
        """A comma list of ``avx2``, ``avx512``, ``amx`` (any case), or ``none``, as
        ``fit memory --cpu`` takes it; an unknown name is bad input."""
        wanted = {name.strip().lower() for name in names.split(",") if name.strip()} - {"none"}
        unknown = wanted - {"avx2", "avx512", "amx"}
        if unknown:
            raise BadInput(f"unknown CPU feature(s): {', '.join(sorted(unknown))}")
        return cls(avx2="avx2" in wanted, avx512="avx512" in wanted, amx_int8="amx" in wanted)

    @classmethod
    def detect(cls, cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuFeatures:
        """This machine's CPU, as a native llama.cpp build would see it."""
        try:
            text = cpuinfo.read_text()
        except OSError:
            return cls()
        flags = set(re.findall(r"\b(avx2|avx512f|amx_int8|avx512_vnni)\b", text))
        return cls(
            avx2="avx2" in flags,
            avx512="avx512f" in flags,
            amx_int8="amx_int8" in flags and "avx512_vnni" in flags,
        )

    def repack_ok(self, type_name: str, shape: tuple[int, ...]) -> bool:
        """``ggml_repack_get_optimal_repack_type`` != nullptr on x86."""
        if not self.repack or len(shape) < 2 or shape[1] % 8 != 0:
            return False
        if type_name in ("Q4_0", "Q4_K", "IQ4_NL", "MXFP4"):
            return self.avx2
        if type_name == "Q2_K":
            return self.avx512
        return False


# --- devices -----------------------------------------------------------------------------


class DeviceKind(StrEnum):
    CUDA = "CUDA"
    RPC = "RPC"


class LlamaDevice(BaseModel):
    """A device llama.cpp offloads to, under its own names."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="device name: CUDA0, RPC0 ...")
    kind: DeviceKind
    buffer_type: str = Field(description="default buffer type: CUDA0, RPC0[host:port] ...")
    free_bytes: int | None = Field(default=None, description="free memory, for the default split")
    remote_kind: str = Field(default="CPU", description="backend behind an RPC server")

    @property
    def host_buffer_type(self) -> str | None:
        return CUDA_HOST if self.kind is DeviceKind.CUDA else None

    @property
    def pads_like_cuda(self) -> bool:
        return self.kind is DeviceKind.CUDA or self.remote_kind == "CUDA"


def rpc_devices(endpoints: Sequence[str], free_bytes: int | None = None) -> list[LlamaDevice]:
    """One device per RPC server (each CPU-backed server exposes one device), numbered
    globally in registration order: RPC0, RPC1 ..."""
    return [
        LlamaDevice(
            name=f"RPC{index}",
            kind=DeviceKind.RPC,
            buffer_type=rpc_buffer_names(endpoint)[0],
            free_bytes=free_bytes,
        )
        for index, endpoint in enumerate(endpoints)
    ]


def model_devices(
    config: LaunchConfig,
    gpus: Sequence[LlamaDevice] = (),
    rpc_free_bytes: int | None = None,
) -> list[LlamaDevice]:
    """Devices the model loads onto, in llama.cpp's order (``llama_prepare_model_devices``)."""
    rpc = rpc_devices(config.rpc_servers, rpc_free_bytes)
    available = {device.name: device for device in [*rpc, *gpus]}
    if config.devices is not None:
        chosen = []
        for name in config.devices:
            if name not in available:
                raise BadInput(f"llama-server argument -dev: invalid device: {name}")
            chosen.append(available[name])
    else:
        chosen = [*rpc, *gpus]  # RPC servers at the front to minimize network transfers
    if config.split_mode in ("row", "tensor"):
        raise BadInput(f"-sm {config.split_mode} is not modelled (use layer or none)")
    if config.split_mode == "none" and chosen:
        if config.main_gpu < 0:
            return []
        if config.main_gpu >= len(chosen):
            raise BadInput(
                f"invalid value for main_gpu: {config.main_gpu} (available devices: {len(chosen)})"
            )
        return [chosen[config.main_gpu]]
    return chosen


# --- per-tensor facts computed once per inventory ------------------------------------------


class Op(StrEnum):
    GET_ROWS = "GET_ROWS"
    MUL_MAT = "MUL_MAT"
    MUL_MAT_ID = "MUL_MAT_ID"
    OTHER = "OTHER"  # element-wise and friends: every backend supports them for weights


class Section(StrEnum):
    INPUT = "input"
    OUTPUT = "output"
    REPEATING = "repeating"


_SSM_MUL_MAT = ("ssm_in", "ssm_out", "ssm_x", "ssm_dt", "ssm_alpha", "ssm_beta", "ssm_ba",
                "ssm_f_a", "ssm_f_b", "ssm_g_a", "ssm_g_b")  # fmt: skip
_INPUT_ROLES = ("token_embd", "pos_embd", "token_types", "per_layer_token_embd")
_PER_LAYER_GLOBALS = ("rope_freqs", "rope_factors_long", "rope_factors_short")
# llm_tensor_info: layer weights read by GGML_OP_GET_ROWS (deepseek4's hash-routing table and
# its compressors' position embeddings; an MTP layer's own token embedding, which step35's
# loader creates even when it skips the MTP layer)
_GET_ROWS_ROLES = (
    "ffn_gate_tid2eid", "attn_compressor_ape", "indexer_compressor_ape", "nextn.embed_tokens"
)  # fmt: skip
# One GGUF name, two tensors in llama-arch.cpp: blk.N.indexer_compressor_ape is
# LLM_TENSOR_INDEXER_COMPRESSOR_APE (GET_ROWS) as deepseek4.cpp creates it, but
# LLM_TENSOR_INDEXER_KPOOL_APE (ADD: the pool gates plus the position embeddings) as
# glm5-next.cpp does; llm_tensor_info is looked up by the enum the loader passes
_ADD_ROLES_BY_ARCH = {"glm5-next": frozenset({"indexer_compressor_ape"})}
# gemma4's per-layer-embedding projection and norm: global names, created for layer 0
# (create_tensor(tn(..., "weight", 0))), so they live in layer 0's buffer
_LAYER0_GLOBALS = ("per_layer_model_proj.", "per_layer_proj_norm.")
# CUDA supports_op: MUL_MAT(_ID) and GET_ROWS weight types (ggml_backend_cuda_device_supports_op)
_CUDA_MUL_MAT_TYPES = frozenset(
    {"F32", "F16", "Q1_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "MXFP4", "NVFP4", "Q2_K",
     "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ1_M", "IQ1_S", "IQ2_S", "IQ2_XS", "IQ2_XXS",
     "IQ3_S", "IQ3_XXS", "IQ4_NL", "IQ4_XS", "BF16"}
)  # fmt: skip
_CUDA_GET_ROWS_TYPES = frozenset(
    {"F16", "F32", "BF16", "I32", "Q1_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K",
     "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S",
     "IQ1_M", "IQ4_NL", "IQ4_XS", "MXFP4"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class WeightInfo:
    """One weight as the loader sees it: its op, layer list, file position and sizes."""

    name: str
    type: str
    shape: tuple[int, ...]
    n_bytes: int
    layer: int | None
    op: Op
    section: Section
    file_index: int
    offset: int
    skipped: bool  # never created (unused MTP layer)

    @property
    def n_dims(self) -> int:
        return ggml_types.n_dims(self.shape)


def _created_shape(tensor: Tensor, hparams: ModelHparams) -> tuple[int, ...]:
    """The shape the loader creates the weight with. deepseek4.cpp reshapes attn_output_a
    (TENSOR_ALLOW_RESHAPE) from the file's [H*D/G, R*G] to [H*D/G, R, G], G output groups of
    rank R: a 3-D MUL_MAT weight, which CPU repacking does not take."""
    shape = tuple(tensor.shape)
    if hparams.arch == "deepseek4" and tensor.role == "attn_output_a" and len(shape) == 2:
        layer = hparams.layers[tensor.layer or 0]
        groups = layer.n_head * layer.head_k // shape[0] if shape[0] else 0
        if groups and shape[1] % groups == 0:
            return (shape[0], shape[1] // groups, groups)
    return shape


def tensor_op(tensor: Tensor, arch: str) -> tuple[Op, Section]:
    """The op llama.cpp checks a weight against (``llm_tensor_info``) and its layer list,
    for the architecture whose loader creates it."""
    suffix = tensor.name.rsplit(".", 1)[-1]
    role = tensor.role
    if tensor.layer is None:
        if role in _INPUT_ROLES:
            return Op.GET_ROWS, Section.INPUT
        if role in _PER_LAYER_GLOBALS:
            return Op.OTHER, Section.REPEATING
        if "norm" in role or suffix == "bias":
            return Op.OTHER, Section.OUTPUT
        return Op.MUL_MAT, Section.OUTPUT
    if suffix == "bias" or role in ("exp_probs_b", "attn_sinks") or "norm" in role:
        return Op.OTHER, Section.REPEATING
    if "_exps" in role or "_chexps" in role:
        return Op.MUL_MAT_ID, Section.REPEATING
    if role in _ADD_ROLES_BY_ARCH.get(arch, ()):
        return Op.OTHER, Section.REPEATING
    if role in _GET_ROWS_ROLES:
        return Op.GET_ROWS, Section.REPEATING
    # llm_tensor_info: the SSM projections (in, x, dt, out; DeltaNet's alpha and beta; KDA's
    # low-rank gates f_a/f_b/g_a/g_b) are MUL_MAT weights (qwen3next's fused ssm_ba too), the
    # rest (conv1d, A, D, norms) element-wise
    if role.startswith("ssm_") and not role.startswith(_SSM_MUL_MAT):
        return Op.OTHER, Section.REPEATING
    if role == "shortconv.conv":  # lfm2's kernel: GGML_OP_SSM_CONV
        return Op.OTHER, Section.REPEATING
    return Op.MUL_MAT, Section.REPEATING


class ModelTensors:
    """Per-inventory tables the placement reads; built once, reused for every config."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.hparams: ModelHparams = model_hparams(inventory)
        alignment = inventory.data_alignment
        next_offset: dict[int, int] = {}
        weights: list[WeightInfo] = []
        for tensor in inventory.tensors:
            # GGUF writers lay tensor data out in header order, each padded to the alignment
            offset = next_offset.get(tensor.file_index, 0)
            next_offset[tensor.file_index] = offset + ggml_types.pad(tensor.n_bytes, alignment)
            op, section = tensor_op(tensor, inventory.architecture)
            weights.append(
                WeightInfo(
                    name=tensor.name,
                    type=tensor.type,
                    shape=_created_shape(tensor, self.hparams),
                    n_bytes=tensor.n_bytes,
                    layer=tensor.layer,
                    op=op,
                    section=section,
                    file_index=tensor.file_index,
                    offset=offset,
                    skipped=not self.hparams.loads(tensor.name, tensor.layer),
                )
            )
        self.weights: tuple[WeightInfo, ...] = tuple(weights)
        names = {w.name for w in weights}
        self.tied_output = "output.weight" not in names and "token_embd.weight" in names
        self.by_name = {w.name: w for w in weights}
        self._override_matches: dict[str, frozenset[str]] = {}
        self._first_rule: dict[tuple[str, ...], dict[str, int]] = {}

    def matching(self, pattern: str) -> frozenset[str]:
        """Names ``std::regex_search(name, pattern)`` finds a match in (cached per pattern)."""
        found = self._override_matches.get(pattern)
        if found is None:
            regex = _compile_ecmascript(pattern)
            found = frozenset(w.name for w in self.weights if regex.search(w.name))
            self._override_matches[pattern] = found
        return found

    def first_matching_rule(self, patterns: tuple[str, ...]) -> dict[str, int]:
        """Weight name -> index of the first pattern that matches it (cached per rule list)."""
        found = self._first_rule.get(patterns)
        if found is None:
            found = {}
            for index, pattern in enumerate(patterns):
                for name in self.matching(pattern):
                    found.setdefault(name, index)
            if len(self._first_rule) > 256:
                self._first_rule.clear()
            self._first_rule[patterns] = found
        return found

    @cached_property
    def token_embd(self) -> WeightInfo | None:
        return self.by_name.get("token_embd.weight")


_PYTHON_ONLY_REGEX = re.compile(r"\(\?P|\(\?<[=!]|\(\?[aiLmsux]|\(\?#|\\[AZ]")


def _compile_ecmascript(pattern: str) -> re.Pattern[str]:
    """Compile an ``-ot`` pattern; ``std::regex`` (ECMAScript) and Python agree on the
    subset llama.cpp users write. Constructs only Python knows are rejected, as
    ``std::regex`` would throw on them."""
    if _PYTHON_ONLY_REGEX.search(pattern):
        raise BadInput(f"-ot pattern {pattern!r} is not a valid ECMAScript regex")
    try:
        return re.compile(pattern)
    except re.error as error:
        raise BadInput(f"-ot pattern {pattern!r} is not a valid regex: {error}") from None


# --- buffer types ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BufferType:
    """A ggml buffer type as the loader uses it: who owns its memory, how it sizes tensors."""

    name: str
    device: str  # device whose memory it is: CPU for every host buffer
    alignment: int
    cuda_padding: bool = False  # quantized rows padded to MATRIX_ROW_PADDING
    amx: bool = False
    extra: bool = False  # a CPU extra (repacking) buffer type
    host: bool = False  # a GPU's pinned host buffer (CUDA_Host)
    cuda: bool = False  # supports only what CUDA supports

    def alloc_size(self, weight_type: str, shape: tuple[int, ...], nbytes: int) -> int:
        """``ggml_backend_buft_get_alloc_size`` padded to the alignment."""
        size = nbytes
        if self.amx and weight_type in _AMX_PACKED_TYPES:
            size = _amx_alloc_size(weight_type, shape)
        elif self.cuda_padding and ggml_types.is_quantized(weight_type):
            remainder = shape[0] % MATRIX_ROW_PADDING
            if remainder:
                size += ggml_types.row_size(weight_type, MATRIX_ROW_PADDING - remainder)
        return ggml_types.pad(size, self.alignment)


_AMX_PACKED_TYPES = frozenset({"Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"})
_AMX_K_ALIGNMENT = {"Q4_0": 32, "Q4_1": 32, "Q8_0": 32, "Q4_K": 256, "Q5_K": 256, "Q6_K": 256}
_AMX_K_ALIGNMENT |= {"IQ4_XS": 256, "F16": 16}


def _amx_alloc_size(weight_type: str, shape: tuple[int, ...]) -> int:
    """``ggml_backend_amx_get_alloc_size``: N rows of the VNNI-packed row size (ne[1] only)."""
    block, type_size = ggml_types.block_and_type_size(weight_type)
    k_blocks = shape[0] // block
    row = k_blocks * type_size
    if weight_type == "Q8_0":
        row += k_blocks * 4  # compensation
    elif weight_type in ("Q4_K", "Q5_K"):
        row += k_blocks * 4
    elif weight_type == "IQ4_XS":
        row += k_blocks * 2
    return shape[1] * row


def _supports(buft: BufferType, weight: WeightInfo, op: Op, cpu: CpuFeatures) -> bool:
    """``weight_buft_supported``: can the buffer type's device run the weight's op?"""
    if buft.amx:
        if op is not Op.MUL_MAT or len(weight.shape) < 2 or weight.shape[1] % 32:
            return False
        k_alignment = _AMX_K_ALIGNMENT.get(weight.type)
        return k_alignment is not None and weight.shape[0] % k_alignment == 0
    if buft.extra:  # CPU_REPACK
        if (op is Op.MUL_MAT and weight.n_dims == 2) or (
            op is Op.MUL_MAT_ID and weight.n_dims == 3
        ):
            return cpu.repack_ok(weight.type, weight.shape)
        return False
    if buft.cuda:
        if op in (Op.MUL_MAT, Op.MUL_MAT_ID):
            return weight.type in _CUDA_MUL_MAT_TYPES
        if op is Op.GET_ROWS:
            return weight.type in _CUDA_GET_ROWS_TYPES
    return True


def device_buffer_type(device: LlamaDevice) -> BufferType:
    cuda_like = device.pads_like_cuda
    return BufferType(
        name=device.buffer_type,
        device=device.name,
        alignment=CUDA_ALIGNMENT if cuda_like else TENSOR_ALIGNMENT,
        cuda_padding=cuda_like,
        cuda=device.kind is DeviceKind.CUDA,
    )


CPU_BUFFER = BufferType(name=CPU, device=CPU, alignment=TENSOR_ALIGNMENT)


def cpu_buffer_list(
    devices: Sequence[LlamaDevice], config: LaunchConfig, cpu: CpuFeatures
) -> list[BufferType]:
    """``make_cpu_buft_list``: host buffer of the first GPU, extra buffer types, then CPU."""
    bufts = []
    if not config.no_host:
        host = next((d for d in devices if d.host_buffer_type), None)
        if host is not None:
            bufts.append(
                BufferType(
                    name=host.host_buffer_type or "",
                    device=CPU,
                    alignment=TENSOR_ALIGNMENT,
                    host=True,
                    cuda=True,
                )
            )
    if config.repack:
        if cpu.amx_int8:
            bufts.append(BufferType(name=AMX, device=CPU, alignment=TENSOR_ALIGNMENT, amx=True))
        if cpu.repack:
            bufts.append(
                BufferType(name=CPU_REPACK, device=CPU, alignment=TENSOR_ALIGNMENT, extra=True)
            )
    bufts.append(CPU_BUFFER)
    return bufts


# --- layer split ------------------------------------------------------------------------------


def layer_split(
    n_layer_all: int,
    n_gpu_layers: int,
    devices: Sequence[LlamaDevice],
    tensor_split: Sequence[float],
) -> list[int]:
    """Device index per layer 0..n_layer_all (the last entry is the output layer); -1 = CPU.

    ``load_tensors``: float32 cumulative split points, ``upper_bound`` per layer.
    """
    n_devices = len(devices)
    ngl = n_gpu_layers if n_gpu_layers >= 0 else n_layer_all + 1
    if n_devices == 0:
        return [-1] * (n_layer_all + 1)
    splits = np.zeros(n_devices, dtype=np.float32)
    given = list(tensor_split[:n_devices]) + [0.0] * max(0, n_devices - len(tensor_split))
    if all(x == 0.0 for x in given):
        free = [device.free_bytes for device in devices]
        if any(f is None for f in free):
            if n_devices > 1 and len(set(free)) > 1:
                raise BadInput("without -ts layers split by free memory; give it for each device")
            free = [1] * n_devices
        for i, value in enumerate(free):
            splits[i] = np.float32(value)
    else:
        for i, value in enumerate(given):
            splits[i] = np.float32(value)
    split_sum = np.float32(0.0)
    for i in range(n_devices):
        split_sum = np.float32(split_sum + splits[i])
        splits[i] = split_sum
    for i in range(n_devices):
        splits[i] = np.float32(splits[i] / split_sum)
    i_gpu_start = max(n_layer_all + 1 - ngl, 0)
    act_gpu_layers = min(ngl, n_layer_all + 1)
    result = []
    for il in range(n_layer_all + 1):
        if il < i_gpu_start or (il - i_gpu_start) >= act_gpu_layers:
            result.append(-1)
            continue
        point = np.float32(np.float32(il - i_gpu_start) / np.float32(act_gpu_layers))
        index = int(np.searchsorted(splits, point, side="right"))
        result.append(min(index, n_devices - 1))
    return result


# --- the placement --------------------------------------------------------------------------


class ModelBuffer(BaseModel):
    """One model weight buffer as ``load_tensors`` prints it."""

    model_config = ConfigDict(frozen=True)

    buffer_type: str = Field(description="name in the log: CPU_Mapped, CUDA0, CPU_REPACK ...")
    device: str = Field(description="whose memory: CPU for every host buffer")
    size: int = Field(description="bytes")
    extra: bool = Field(default=False, description="a CPU repacking buffer (CPU_REPACK, AMX)")


class TensorPlacement(BaseModel):
    """Which device holds each weight and each layer's KV cache."""

    model_config = ConfigDict(frozen=True)

    devices: tuple[str, ...] = Field(description="offload devices in llama.cpp order")
    layer_devices: tuple[str, ...] = Field(description="device of layers 0..n_layer-1")
    output_device: str
    tensor_buffers: dict[str, str] = Field(
        description="weight -> buffer type; tied embeddings add 'output.weight' for the copy"
    )
    tensor_devices: dict[str, str] = Field(description="weight -> device (CPU for host)")
    layer_kv_devices: tuple[str | None, ...] = Field(
        description="per layer: device holding its KV cache, None if it has none"
    )
    layer_rs_devices: tuple[str | None, ...] = Field(
        default=(), description="per layer: device holding its recurrent state, None if none"
    )
    buffers: tuple[ModelBuffer, ...]


def place_tensors(
    tables: ModelTensors,
    config: LaunchConfig,
    devices: Sequence[LlamaDevice],
    cpu: CpuFeatures,
) -> TensorPlacement:
    """Run the loader's placement for one launch configuration (``load_tensors``)."""
    lists = _BufferLists.of(tables.hparams.n_layer_all, config, devices, cpu)
    chooser = _Chooser(
        tables, config, cpu, lists.cpu, _override_buffer_types(config, devices, lists.devices)
    )
    assignment = _Assignment()
    for weight in tables.weights:
        if not weight.skipped:
            _assign_weight(tables, lists, chooser, assignment, weight)
    if tables.tied_output and tables.token_embd is not None:
        _assign_tied_output(tables.token_embd, lists, chooser, assignment)
    return _placement(tables.hparams, config, devices, lists.split, assignment)


@dataclass(frozen=True)
class _BufferLists:
    """``load_tensors``' buffer type lists: the CPU's (``make_cpu_buft_list``), each device's
    default buffer type, and the list each layer and the output layer draw from."""

    cpu: list[BufferType]
    devices: list[BufferType]
    split: list[int]  # device index per layer 0..n_layer_all (the last: output); -1 = CPU
    layers: list[list[BufferType]]
    output: list[BufferType]

    @classmethod
    def of(
        cls,
        n_layer_all: int,
        config: LaunchConfig,
        devices: Sequence[LlamaDevice],
        cpu: CpuFeatures,
    ) -> _BufferLists:
        # "build a list of buffer types for the CPU and GPU devices": a GPU's list is its own
        # buffer type, then the CPU's
        cpu_list = cpu_buffer_list(devices, config, cpu)
        device_bufts = [device_buffer_type(device) for device in devices]
        gpu_lists = [[buft, *cpu_list] for buft in device_bufts]
        # "calculate the split points", then "assign the repeating layers" and "the output
        # layer" to the devices according to the splits
        split = layer_split(n_layer_all, config.n_gpu_layers, devices, config.tensor_split)

        def layer_list(index: int) -> list[BufferType]:
            return cpu_list if index < 0 else gpu_lists[index]

        layers = [layer_list(split[il]) for il in range(n_layer_all)]
        return cls(cpu_list, device_bufts, split, layers, layer_list(split[n_layer_all]))


class _Chooser:
    """``create_tensor``'s choice of a weight's buffer type: the first ``-ot`` rule matching
    its name wins (``tensor_buft_overrides``), else the first buffer type of its list that
    supports the weight's op (``select_weight_buft``); never a host buffer with mmap."""

    def __init__(
        self,
        tables: ModelTensors,
        config: LaunchConfig,
        cpu: CpuFeatures,
        cpu_list: list[BufferType],
        override_bufts: dict[str, BufferType],
    ) -> None:
        self.config, self.cpu, self.cpu_list = config, cpu, cpu_list
        self.override_bufts = override_bufts
        self.first_rule = tables.first_matching_rule(tuple(r.pattern for r in config.overrides))

    def __call__(self, weight: WeightInfo, op: Op, candidates: list[BufferType]) -> BufferType:
        buft = None
        rule_index = self.first_rule.get(weight.name)
        if rule_index is not None:  # the first -ot rule that matches wins
            target = self.config.overrides[rule_index].buffer_type
            if target == CPU:
                buft = _first_supported(self.cpu_list, weight, op, self.cpu)
            else:
                buft = self.override_bufts[target]
        if buft is None:
            buft = _first_supported(candidates, weight, op, self.cpu)
        if self.config.use_mmap and buft.host:  # "avoid using a host buffer when using mmap"
            buft = CPU_BUFFER
        return buft


class _Assignment:
    """The weights of each buffer type, in the order the loader creates them, and the buffer
    type of each weight (tied embeddings add ``output.weight`` for the copy)."""

    def __init__(self) -> None:
        self.contents: dict[str, list[WeightInfo]] = {}
        self.buft_by_name: dict[str, BufferType] = {}
        self.tensor_buffers: dict[str, str] = {}

    def add(self, buft: BufferType, weight: WeightInfo) -> None:
        self.buft_by_name[buft.name] = buft
        self.contents.setdefault(buft.name, []).append(weight)


def _assign_weight(
    tables: ModelTensors,
    lists: _BufferLists,
    choose: _Chooser,
    assignment: _Assignment,
    weight: WeightInfo,
) -> None:
    """One weight into its buffer: its list by section and layer ("assign the input layer":
    the CPU's), then the choice; a layer-0 weight duplicated per layer once per buffer type."""
    if weight.section is Section.INPUT:
        candidates = lists.cpu
    elif weight.name.startswith(_LAYER0_GLOBALS):
        candidates = lists.layers[0]
    elif weight.section is Section.OUTPUT:
        candidates = lists.output
    elif weight.layer is not None and weight.layer < tables.hparams.n_layer_all:
        candidates = lists.layers[weight.layer]
    else:  # blocks that are not model layers (a head's blocks) go with the output
        candidates = lists.output
    if weight.layer is None and weight.section is Section.REPEATING:
        # rope_freqs & co: created for layer 0, duplicated into every other layer's buffer
        # (an MTP layer's too where its loader creates it: step35)
        seen: set[str] = set()
        hp = tables.hparams
        mtp = range(hp.n_layer, hp.n_layer_all) if hp.skips_mtp_tensors else range(0)
        for il in [*range(hp.n_layer), *(il for il in mtp if hp.loads(weight.name, il))]:
            buft = choose(weight, weight.op, lists.layers[il])
            if buft.name not in seen:
                seen.add(buft.name)
                assignment.add(buft, weight)
                assignment.tensor_buffers.setdefault(weight.name, buft.name)
        return
    buft = choose(weight, weight.op, candidates)
    assignment.add(buft, weight)
    assignment.tensor_buffers[weight.name] = buft.name


def _assign_tied_output(
    embd: WeightInfo, lists: _BufferLists, choose: _Chooser, assignment: _Assignment
) -> None:
    """Tied embeddings: the output reads token_embd as a MUL_MAT weight in the output
    layer's buffer type, a copy there unless token_embd already is in it."""
    buft = choose(embd, Op.MUL_MAT, lists.output)
    if not any(w.name == embd.name for w in assignment.contents.get(buft.name, ())):
        assignment.add(buft, embd)
    assignment.tensor_buffers["output.weight"] = buft.name


def _placement(
    hp: ModelHparams,
    config: LaunchConfig,
    devices: Sequence[LlamaDevice],
    split: list[int],
    assignment: _Assignment,
) -> TensorPlacement:
    """The weight buffers ("create the backend buffers", sized by ``_size_buffers``) and the
    device of each layer, its KV cache and its recurrent state."""
    n_layer_all = hp.n_layer_all
    buffers = _size_buffers(assignment.contents, assignment.buft_by_name, config.use_mmap)
    device_of = {name: buft.device for name, buft in assignment.buft_by_name.items()}
    names = [device.name for device in devices]

    def device_name(index: int) -> str:
        return CPU if index < 0 else names[index]

    layer_devices = tuple(device_name(split[il]) for il in range(n_layer_all))
    # KV and recurrent state follow their layer unless -nkvo keeps them on the CPU
    kv_devices = tuple(
        (layer_devices[il] if config.kv_offload else CPU) if hp.layer_has_kv(il) else None
        for il in range(n_layer_all)
    )
    rs_devices = tuple(
        (layer_devices[il] if config.kv_offload else CPU) if has_rs else None
        for il, has_rs in enumerate(hp.rs_layers)
    )
    tensor_buffers = assignment.tensor_buffers
    return TensorPlacement(
        devices=tuple(names),
        layer_devices=layer_devices,
        output_device=device_name(split[n_layer_all]),
        tensor_buffers=tensor_buffers,
        tensor_devices={name: device_of[buft] for name, buft in tensor_buffers.items()},
        layer_kv_devices=kv_devices,
        layer_rs_devices=rs_devices,
        buffers=buffers,
    )


def _first_supported(
    candidates: list[BufferType], weight: WeightInfo, op: Op, cpu: CpuFeatures
) -> BufferType:
    for buft in candidates:
        if _supports(buft, weight, op, cpu):
            return buft
    raise BadInput(f"no compatible buffer type for tensor {weight.name}")  # pragma: no cover


def _override_buffer_types(
    config: LaunchConfig, devices: Sequence[LlamaDevice], device_bufts: Sequence[BufferType]
) -> dict[str, BufferType]:
    """Buffer types ``-ot`` may name: CPU plus every device's default buffer type."""
    known = {CPU: CPU_BUFFER}
    for device, buft in zip(devices, device_bufts, strict=True):
        known[device.buffer_type] = buft
    for rule in config.overrides:
        if rule.buffer_type not in known:
            raise BadInput(
                f"-ot {rule.pattern}={rule.buffer_type}: no device with buffer type "
                f"'{rule.buffer_type}' in this launch (devices: {', '.join(known)})"
            )
    return known


def _size_buffers(
    contents: dict[str, list[WeightInfo]], bufts: dict[str, BufferType], use_mmap: bool
) -> tuple[ModelBuffer, ...]:
    """Bytes of each model buffer, in the order llama.cpp's log tends to print them."""
    buffers = []
    for name, weights in contents.items():
        buft = bufts[name]
        if use_mmap and name == CPU:
            # ggml_backend_dev_buffer_from_host_ptr over [first, last) of each file
            ranges: dict[int, list[int]] = {}
            for w in weights:
                span = ranges.setdefault(w.file_index, [w.offset, w.offset + w.n_bytes])
                span[0] = min(span[0], w.offset)
                span[1] = max(span[1], w.offset + w.n_bytes)
            for file_index in sorted(ranges):
                first, last = ranges[file_index]
                buffers.append(ModelBuffer(buffer_type=CPU_MAPPED, device=CPU, size=last - first))
            continue
        size = sum(buft.alloc_size(w.type, w.shape, w.n_bytes) for w in weights)
        extra = buft.extra or buft.amx
        buffers.append(ModelBuffer(buffer_type=name, device=buft.device, size=size, extra=extra))
    return tuple(buffers)
