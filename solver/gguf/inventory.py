"""The tensor inventory of a model: what every later step of fit reasons about.

An ``Inventory`` is an immutable record of a GGUF model's header: the architecture, the
hyperparameters llama.cpp derives from the metadata, and every tensor's name, type, shape and
size. No tensor data is ever read to build one. Readers (``solver.gguf.reader``) produce it
from local files, split sets or remote headers; ``solver.gguf.catalogue`` stores compact copies.

Shapes are in ggml order: ``shape[0]`` is the contiguous (row) dimension, as llama.cpp's
``ne[0]``. Sizes are bytes as the file stores them (``ggml_nbytes``).
"""

from __future__ import annotations

import re
from collections import Counter
from enum import StrEnum
from functools import cached_property

from gguf import GGUF_DEFAULT_ALIGNMENT, Keys
from pydantic import BaseModel, ConfigDict, Field


class TensorGroup(StrEnum):
    """Coarse tensor groups: the units the placement moves between devices.

    The groups are what ``-ot`` rules can address by name pattern: routed experts
    (``ffn_*_exps``), shared experts (``ffn_*_shexp``), the dense FFN, attention. Everything
    else in a layer (norms, router) is small and follows the layer.
    """

    TOKEN_EMBD = "token_embd"
    OUTPUT = "output"
    OUTPUT_NORM = "output_norm"
    ATTENTION = "attention"
    FFN_DENSE = "ffn_dense"
    FFN_EXPERTS = "ffn_experts"
    FFN_SHARED_EXPERTS = "ffn_shared_experts"
    FFN_ROUTER = "ffn_router"
    NORM = "norm"
    SSM = "ssm"
    OTHER = "other"


_LAYER_NAME = re.compile(r"^blk\.(\d+)\.(.+)$")
_SUFFIX = re.compile(r"\.(weight|bias|scale|scales)$")


def split_tensor_name(name: str) -> tuple[int | None, str]:
    """``"blk.12.ffn_up_exps.weight"`` -> ``(12, "ffn_up_exps")``; global tensors get ``None``."""
    layer: int | None = None
    base = name
    match = _LAYER_NAME.match(name)
    if match:
        layer = int(match.group(1))
        base = match.group(2)
    return layer, _SUFFIX.sub("", base)


def classify_role(role: str, layer: int | None) -> TensorGroup:
    """Map a tensor's role (its name without layer prefix and suffix) to a placement group.

    Works from the structure of llama.cpp's tensor names (``gguf.constants.TENSOR_NAMES``),
    not from a per-model table, so new architectures classify without code changes.
    """
    if layer is None:
        if role in ("token_embd", "output", "output_norm"):
            return TensorGroup(role)
        return TensorGroup.OTHER
    if "_exps" in role or role == "exp_probs_b":
        return TensorGroup.FFN_EXPERTS if role != "exp_probs_b" else TensorGroup.FFN_ROUTER
    if "_shexp" in role:
        return TensorGroup.FFN_SHARED_EXPERTS
    if role.endswith("norm") or "_norm" in role:
        return TensorGroup.NORM
    if role.startswith("ffn_gate_inp"):
        return TensorGroup.FFN_ROUTER
    if role.startswith("ffn_"):
        return TensorGroup.FFN_DENSE
    if role.startswith("attn_") or role.startswith("indexer"):
        return TensorGroup.ATTENTION
    if role.startswith("ssm_"):
        return TensorGroup.SSM
    return TensorGroup.OTHER


MetadataValue = str | int | float | bool | list[int] | list[float] | list[bool]
"""A metadata value as fit keeps it. String arrays, numeric arrays longer than
``solver.gguf.reader.MAX_KEPT_ARRAY`` and strings longer than ``MAX_KEPT_STRING`` are replaced by
their length (an ``int``), so a 262k-token vocabulary costs one integer."""


class Tensor(BaseModel):
    """One tensor of the model, as its GGUF header describes it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    name: str
    type: str = Field(description="ggml type name, e.g. Q4_K, F32, MXFP4")
    shape: tuple[int, ...] = Field(description="ggml order: shape[0] is the row length")
    n_bytes: int = Field(alias="bytes", ge=0, description="bytes stored in the file")
    layer: int | None = Field(default=None, description="repeating layer index, None if global")
    role: str = Field(description="name without blk.N. prefix and .weight/.bias suffix")
    group: TensorGroup
    file_index: int = Field(default=0, description="part of a split set holding the data")

    @property
    def n_elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


def make_tensor(
    name: str, type_name: str, shape: tuple[int, ...], n_bytes: int, file_index: int = 0
) -> Tensor:
    """Build a ``Tensor`` with its layer, role and group derived from the name."""
    layer, role = split_tensor_name(name)
    return Tensor(
        name=name,
        type=type_name,
        shape=shape,
        n_bytes=n_bytes,
        layer=layer,
        role=role,
        group=classify_role(role, layer),
        file_index=file_index,
    )


class Experts(BaseModel):
    """Mixture-of-experts shape; ``count == 0`` for a dense model."""

    model_config = ConfigDict(frozen=True)

    count: int = 0
    used: int = 0
    shared: int = 0
    leading_dense_layers: int = Field(
        default=0, description="first layers with a dense FFN instead of experts"
    )
    feed_forward_length: int = Field(default=0, description="hidden width of one expert")
    shared_feed_forward_length: int = Field(default=0, description="hidden width of shared FFN")


class Attention(BaseModel):
    """Attention geometry per layer, as llama.cpp's ``llama_hparams`` derives it."""

    model_config = ConfigDict(frozen=True)

    n_head: tuple[int, ...] = Field(description="query heads per layer")
    n_head_kv: tuple[int, ...] = Field(description="KV heads per layer (0 = no attention)")
    key_length: int = Field(description="K head dim (n_embd_head_k)")
    value_length: int = Field(description="V head dim (n_embd_head_v)")
    sliding_window: int = Field(default=0, description="SWA window in tokens, 0 if none")
    swa_layers: tuple[bool, ...] = Field(
        default=(), description="per layer: True if it uses the sliding window"
    )
    kv_lora_rank: int = Field(default=0, description="MLA compressed KV width (deepseek2)")
    q_lora_rank: int = Field(default=0, description="MLA compressed Q width")
    rope_dim: int = Field(default=0, description="rotary dims (n_rot)")
    key_length_mla: int = Field(default=0, description="MLA per-head K dim before compression")
    value_length_mla: int = Field(default=0, description="MLA per-head V dim")
    swa_type: str = Field(
        default="none", description="llama_swa_type: none, standard, chunked or symmetric"
    )
    n_layer_kv_from_start: int = Field(
        default=-1,
        description="if >= 0, only the first this-many layers own a KV cache; the rest reuse it",
    )
    indexer_full: tuple[bool, ...] = Field(
        default=(),
        description="DSA (deepseek32, glm-dsa), per trunk layer: runs its own lightning indexer "
        "(is_indexer_full); a 'shared' layer reuses the last full layer's top-k",
    )


class Recurrent(BaseModel):
    """SSM / recurrent state sizes (mamba, hybrid models); absent for pure attention."""

    model_config = ConfigDict(frozen=True)

    conv_kernel: int = 0
    inner_size: int = 0
    state_size: int = 0
    time_step_rank: int = 0
    group_count: int = 0
    kda_head_dim: int = Field(default=0, description="{arch}.kda.head_dim (kimi-linear's KDA)")
    recurrent_layers: tuple[bool, ...] = ()


class Inventory(BaseModel):
    """Everything fit knows about a model without reading its weights."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="file path, hf:// URL or catalogue name it came from")
    architecture: str
    name: str = ""
    file_type: str = Field(default="", description="quant label, e.g. Q4_K_M")
    n_layers: int = Field(description="block_count: every blk.N, MTP/nextn blocks included")
    n_layers_nextn: int = Field(
        default=0, description="trailing MTP (nextn) blocks among n_layers; not run per token"
    )
    n_embd: int
    n_vocab: int
    context_length: int
    n_ff: tuple[int, ...] = Field(description="dense FFN hidden width per layer (0 if MoE)")
    attention: Attention
    experts: Experts = Experts()
    recurrent: Recurrent | None = None
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict,
        description="scalar metadata and short arrays; long arrays keep only their length",
    )
    tensors: tuple[Tensor, ...]
    files: tuple[str, ...] = Field(default=(), description="parts of a split set, in order")
    header_bytes: int = Field(default=0, description="bytes of header read, all parts")
    bytes_read: int = Field(
        default=0, description="bytes fetched from disk or network to build this, all parts"
    )
    file_bytes: int = Field(default=0, description="size of the GGUF file(s), all parts")

    @cached_property
    def total_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @cached_property
    def n_params(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def n_tensors(self) -> int:
        return len(self.tensors)

    @property
    def data_alignment(self) -> int:
        """Alignment of tensor data in the file: ``general.alignment`` (the reader checked it
        is a power of 2), else gguf's default."""
        alignment = self.metadata.get(Keys.General.ALIGNMENT, GGUF_DEFAULT_ALIGNMENT)
        return alignment if isinstance(alignment, int) else GGUF_DEFAULT_ALIGNMENT

    @property
    def is_moe(self) -> bool:
        return self.experts.count > 0

    def bytes_by_type(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for tensor in self.tensors:
            totals[tensor.type] += tensor.n_bytes
        return dict(totals.most_common())

    def bytes_by_group(self) -> dict[TensorGroup, int]:
        totals: Counter[TensorGroup] = Counter()
        for tensor in self.tensors:
            totals[tensor.group] += tensor.n_bytes
        return dict(totals)

    def tensor(self, name: str) -> Tensor:
        for tensor in self.tensors:
            if tensor.name == name:
                return tensor
        raise KeyError(name)
