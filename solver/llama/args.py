"""llama-server's command line, read exactly as the pinned ``common/arg.cpp`` reads it.

``parse_llama_args`` turns an argument list into a ``LaunchConfig`` (the memory-relevant
settings, with this version's defaults); ``render_llama_args`` turns one back into arguments.
``resolve_workload`` then applies what ``tools/server/server.cpp`` and ``llama_context`` do
to those numbers (auto slots, context padding, batch clamping) and returns the
``ComputeWorkload`` every memory and compute estimate reads.

Facts mirrored here (pinned llama.cpp, ``common/arg.cpp`` unless noted):

- ``--foo_bar`` is read as ``--foo-bar``; an unknown argument is an error; a repeated option
  keeps its last value, except ``-ot``/``--cpu-moe``/``--n-cpu-moe``/``--n-cpu-ffn``, which
  append tensor overrides in command-line order (first match wins at load time).
- Integers go through ``std::stoi`` (leading blanks and a sign allowed, trailing junk ignored).
- ``-ngl auto`` = -1 (default), ``-ngl all`` = -2; any negative value offloads everything.
- ``-c 0`` means the model's training context and also disables ``--fit``'s context reduction.
- ``-np`` defaults to -1 (auto): server.cpp then uses 4 slots and forces a unified KV cache.
- ``-ot`` buffer names must be known when the option is read: ``CPU``, ``CUDA<n>`` and the
  RPC buffers ``RPC<i>[host:port]`` of servers added by an earlier ``--rpc``.
- There is no ``--no-mmap`` in this version: ``--load-mode none`` replaces it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from solver.errors import BadInput
from solver.llama.options import OptionKind, ServerOption, option_kind, server_options

LLAMA_MAX_DEVICES = 16  # llama_max_devices()
UINT32_MAX = 2**32 - 1

# common/arg.cpp kv_cache_types, by ggml_type_name (what -ctk/-ctv accept, case-sensitive)
KV_CACHE_TYPES = {
    "f32": "F32",
    "f16": "F16",
    "bf16": "BF16",
    "q8_0": "Q8_0",
    "q4_0": "Q4_0",
    "q4_1": "Q4_1",
    "iq4_nl": "IQ4_NL",
    "q5_0": "Q5_0",
    "q5_1": "Q5_1",
}

# common/common.h
LLM_FFN_EXPS_REGEX = r"\.ffn_(up|down|gate|gate_up)_(ch|)exps"
LLM_FFN_DENSE_REGEX = r"\.ffn_(up|down|gate)\."

_TRUTHY = ("on", "enabled", "true", "1")
_FALSEY = ("off", "disabled", "false", "0")
_AUTOY = ("auto", "-1")

LOAD_MODES = ("auto", "none", "mmap", "mlock", "mmap+mlock", "dio")

FlashAttnMode = Literal["on", "off", "auto"]
SplitMode = Literal["none", "layer", "row", "tensor"]
LoadMode = Literal["auto", "none", "mmap", "mlock", "mmap+mlock", "dio"]
LazyMode = Literal["auto", "on", "off"]


class TensorOverride(BaseModel):
    """One ``-ot PATTERN=BUFFER`` rule; ``buffer_type`` is a buffer type name (``CPU``...)."""

    model_config = ConfigDict(frozen=True)

    pattern: str
    buffer_type: str


class LaunchConfig(BaseModel):
    """The memory-relevant part of a llama-server command line, as llama.cpp parsed it.

    Defaults are the pinned version's (``common/common.h``, server example).
    """

    model_config = ConfigDict(frozen=True)

    model_path: str | None = None
    n_ctx: int = Field(default=0, description="-c; 0 = the model's training context")
    n_batch: int = 2048
    n_ubatch: int = 512
    n_parallel: int = Field(default=-1, description="-np; negative = auto (4 slots, unified)")
    kv_unified: bool = False
    kv_unified_per_slot: int = 0
    swa_full: bool = False
    flash_attn: FlashAttnMode = "auto"
    cache_type_k: str = Field(default="F16", description="ggml type name, upper case")
    cache_type_v: str = "F16"
    kv_offload: bool = True
    repack: bool = Field(default=True, description="CPU extra buffer types (--no-repack)")
    no_host: bool = False
    op_offload: bool = True
    load_mode: LoadMode = "auto"
    lazy_mode: LazyMode = "auto"
    rpc_servers: tuple[str, ...] = ()
    devices: tuple[str, ...] | None = Field(
        default=None, description="-dev list; None = default selection, () = none"
    )
    overrides: tuple[TensorOverride, ...] = ()
    n_gpu_layers: int = Field(default=-1, description="-1 auto, -2 all, else the count")
    split_mode: SplitMode = "layer"
    tensor_split: tuple[float, ...] = ()
    main_gpu: int = 0
    fit: bool = True
    fit_target_mib: tuple[int, ...] = (1024,)
    fit_min_ctx: int = 4096
    passthrough: tuple[str, ...] = Field(
        default=(), description="accepted arguments that cannot change memory, kept verbatim"
    )

    @property
    def use_mmap(self) -> bool:
        """llama_model_loader: mmap for auto, mmap and mmap+mlock."""
        return self.load_mode in ("auto", "mmap", "mmap+mlock")


# --- value parsing as the C++ handlers do -------------------------------------------------


def _stoi(value: str, option: str) -> int:
    """``std::stoi``: optional blanks and sign, then digits; trailing text is ignored."""
    match = re.match(r"\s*([+-]?\d+)", value)
    if match is None:
        raise BadInput(f"llama-server argument {option}: '{value}' is not an integer")
    number = int(match.group(1))
    if not -(2**31) <= number < 2**31:
        raise BadInput(f"llama-server argument {option}: '{value}' is out of range")
    return number


def _stof(value: str, option: str) -> float:
    """``std::stof``: the longest leading decimal float."""
    match = re.match(r"\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)", value)
    if match is None:
        raise BadInput(f"llama-server argument {option}: '{value}' is not a number")
    return float(match.group(1))


def _split_list(value: str, option: str) -> list[str]:
    """``std::sregex_token_iterator`` over ``[,/]+``: no trailing empty field."""
    parts = re.split(r"[,/]+", value)
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) >= LLAMA_MAX_DEVICES:
        raise BadInput(
            f"llama-server argument {option}: got {len(parts)} input configs, "
            f"but system only has {LLAMA_MAX_DEVICES} devices"
        )
    return parts


def _on_off_auto(value: str, option: str, allow_auto: bool) -> str:
    if value in _TRUTHY:
        return "on"
    if value in _FALSEY:
        return "off"
    if allow_auto and value in _AUTOY:
        return "auto"
    raise BadInput(f"llama-server argument {option}: unknown value '{value}'")


def _choice(value: str, option: str, choices: Iterable[str]) -> str:
    if value not in choices:
        raise BadInput(f"llama-server argument {option}: invalid value '{value}'")
    return value


def rpc_buffer_names(endpoint: str, n_devices: int = 1) -> list[str]:
    """Buffer type names of one RPC server: ``RPC<i>[host:port]``, i = device on that server."""
    return [f"RPC{index}[{endpoint}]" for index in range(n_devices)]


def _parse_overrides(value: str, known_buffers: set[str]) -> list[TensorOverride]:
    """``parse_tensor_buffer_overrides``: comma-separated ``pattern=buffer``, split on ','."""
    rules = []
    for item in value.split(","):
        pattern, sep, buffer_type = item.partition("=")
        if not sep:
            raise BadInput(f"llama-server argument --override-tensor: invalid value '{item}'")
        if buffer_type not in known_buffers:
            raise BadInput(
                f"llama-server argument --override-tensor: unknown buffer type '{buffer_type}'"
                f" (known here: {', '.join(sorted(known_buffers))})"
            )
        rules.append(TensorOverride(pattern=pattern, buffer_type=buffer_type))
    return rules


def n_cpu_overrides(n: int, ffn_regex: str) -> list[TensorOverride]:
    """``llm_add_n_cpu_ffn_overrides``: one rule per layer, ``blk\\.{i}`` + the FFN regex."""
    return [TensorOverride(pattern=f"blk\\.{i}{ffn_regex}", buffer_type="CPU") for i in range(n)]


# --- the parser ---------------------------------------------------------------------------


class _ParseState:
    """Mutable fields while walking argv; frozen into a LaunchConfig at the end."""

    def __init__(self, gpu_buffers: Sequence[str]) -> None:
        self.fields: dict[str, object] = {}
        self.overrides: list[TensorOverride] = []
        self.rpc_servers: list[str] = []
        self.passthrough: list[str] = []
        self.known_buffers: set[str] = {"CPU", *gpu_buffers}


def _apply_memory_option(state: _ParseState, option: ServerOption, arg: str, value: str) -> None:
    """One memory-relevant option, as its handler in common/arg.cpp sets common_params."""
    f = state.fields
    key = option.key
    positive = arg not in _NEGATIVE_SPELLINGS
    match key:
        case "--model":
            f["model_path"] = value
        case "--ctx-size":
            f["n_ctx"] = _stoi(value, arg)
            if f["n_ctx"] == 0:
                f["fit_min_ctx"] = UINT32_MAX  # -c 0: the user wants the full context
        case "--batch-size":
            f["n_batch"] = _stoi(value, arg)
        case "--ubatch-size":
            f["n_ubatch"] = _stoi(value, arg)
        case "--parallel":
            n = _stoi(value, arg)
            if n == 0:
                raise BadInput("llama-server argument --parallel: invalid value for n_parallel")
            f["n_parallel"] = n
        case "--kv-unified":
            f["kv_unified"] = positive
        case "--kv-unified-per-slot":
            f["kv_unified_per_slot"] = _stoi(value, arg)
        case "--swa-full":
            f["swa_full"] = True
        case "--flash-attn":
            f["flash_attn"] = _on_off_auto(value, arg, allow_auto=True)
        case "--cache-type-k" | "--cache-type-v":
            if value not in KV_CACHE_TYPES:
                raise BadInput(
                    f"llama-server argument {arg}: Unsupported cache type: {value} "
                    f"(allowed: {', '.join(KV_CACHE_TYPES)})"
                )
            f["cache_type_k" if key == "--cache-type-k" else "cache_type_v"] = KV_CACHE_TYPES[value]
        case "--kv-offload":
            f["kv_offload"] = positive
        case "--repack":
            f["repack"] = positive
        case "--no-host":
            f["no_host"] = True
        case "--op-offload":
            f["op_offload"] = positive
        case "--load-mode":
            f["load_mode"] = _choice(value, arg, LOAD_MODES)
        case "--lazy-mode":
            f["lazy_mode"] = _choice(value, arg, ("on", "auto", "off"))
        case "--rpc":
            servers = value.split(",")
            if not value:
                raise BadInput("llama-server argument --rpc: no RPC servers specified")
            for server in servers:
                if server not in state.rpc_servers:  # ggml_backend_rpc_add_server dedups
                    state.rpc_servers.append(server)
                    state.known_buffers.update(rpc_buffer_names(server))
        case "--device":
            names = value.split(",")
            f["devices"] = () if names == ["none"] else tuple(names)
        case "--override-tensor":
            state.overrides.extend(_parse_overrides(value, state.known_buffers))
        case "--cpu-moe":
            state.overrides.append(TensorOverride(pattern=LLM_FFN_EXPS_REGEX, buffer_type="CPU"))
        case "--n-cpu-moe" | "--n-cpu-ffn":
            n = _stoi(value, arg)
            if n < 0:
                raise BadInput(f"llama-server argument {arg}: invalid value")
            regex = LLM_FFN_EXPS_REGEX if key == "--n-cpu-moe" else LLM_FFN_DENSE_REGEX
            state.overrides.extend(n_cpu_overrides(n, regex))
        case "--gpu-layers":
            named = {"auto": -1, "all": -2}
            f["n_gpu_layers"] = named[value] if value in named else _stoi(value, arg)
        case "--split-mode":
            f["split_mode"] = _choice(value, arg, ("none", "layer", "row", "tensor"))
        case "--tensor-split":
            f["tensor_split"] = tuple(_stof(part, arg) for part in _split_list(value, arg))
        case "--main-gpu":
            f["main_gpu"] = _stoi(value, arg)
        case "--fit":
            f["fit"] = _on_off_auto(value, arg, allow_auto=False) == "on"
        case "--fit-target":
            f["fit_target_mib"] = tuple(_stoi(part, arg) for part in _split_list(value, arg))
        case "--fit-ctx":
            f["fit_min_ctx"] = _stoi(value, arg)
        case _:  # pragma: no cover - MEMORY_OPTIONS and this match are kept in step
            raise AssertionError(key)


_NEGATIVE_SPELLINGS = frozenset(
    {"-nkvo", "--no-kv-offload", "-nr", "--no-repack", "--no-op-offload", "-no-kvu",
     "--no-kv-unified"}
)  # fmt: skip


def parse_llama_args(args: Sequence[str], gpu_buffers: Sequence[str] = ()) -> LaunchConfig:
    """Read a llama-server argument list (without the program name) as llama.cpp does.

    ``gpu_buffers`` are the local GPU buffer type names ``-ot`` may name (``CUDA0``...);
    without them any ``CUDA<n>`` is accepted. Raises ``BadInput`` for anything llama-server
    would reject and for options whose memory effect fit does not model.
    """
    state = _ParseState(gpu_buffers)
    if not gpu_buffers:
        state.known_buffers.update(f"CUDA{i}" for i in range(LLAMA_MAX_DEVICES))
    table = server_options()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            arg = arg.replace("_", "-")
        option = table.get(arg)
        if option is None:
            hint = " (this version uses --load-mode none)" if arg == "--no-mmap" else ""
            raise BadInput(f"llama-server: error: invalid argument: {args[i]}{hint}")
        if option.n_values and i + option.n_values >= len(args):
            raise BadInput(f"llama-server argument {arg}: expected value for argument")
        values = list(args[i + 1 : i + 1 + option.n_values])
        kind = option_kind(option)
        if kind is OptionKind.MEMORY:
            _apply_memory_option(state, option, arg, values[0] if values else "")
        elif kind is OptionKind.IGNORED:
            state.passthrough.extend([args[i], *values])
        elif kind is OptionKind.NO_SERVER:
            raise BadInput(f"llama-server argument {arg} prints information and exits")
        else:
            raise BadInput(
                f"llama-server argument {arg} changes memory use in a way fit does not model"
            )
        i += 1 + option.n_values
    return LaunchConfig(
        **state.fields,
        overrides=tuple(state.overrides),
        rpc_servers=tuple(state.rpc_servers),
        passthrough=tuple(state.passthrough),
    )


# --- the renderer -------------------------------------------------------------------------


def _format_float(value: float) -> str:
    return f"{value:g}"


def render_llama_args(config: LaunchConfig) -> list[str]:
    """Arguments that make llama-server parse back to ``config`` (defaults are left out).

    Tensor overrides become one comma-joined ``-ot``; llama.cpp splits that value on every
    comma, so a pattern containing a comma cannot be expressed and is an error.
    """
    default = LaunchConfig()
    out: list[str] = []
    if config.model_path is not None:
        out += ["-m", config.model_path]
    if config.rpc_servers:
        out += ["--rpc", ",".join(config.rpc_servers)]
    if config.devices is not None:
        out += ["-dev", ",".join(config.devices) if config.devices else "none"]
    if config.n_ctx != default.n_ctx:
        out += ["-c", str(config.n_ctx)]
    if config.n_batch != default.n_batch:
        out += ["-b", str(config.n_batch)]
    if config.n_ubatch != default.n_ubatch:
        out += ["-ub", str(config.n_ubatch)]
    if config.n_parallel != default.n_parallel:
        out += ["-np", str(config.n_parallel)]
    if config.kv_unified:
        out += ["-kvu"]
    if config.kv_unified_per_slot:
        out += ["--kv-unified-per-slot", str(config.kv_unified_per_slot)]
    if config.swa_full:
        out += ["--swa-full"]
    if config.flash_attn != default.flash_attn:
        out += ["-fa", config.flash_attn]
    lower = {v: k for k, v in KV_CACHE_TYPES.items()}
    if config.cache_type_k != default.cache_type_k:
        out += ["-ctk", lower[config.cache_type_k]]
    if config.cache_type_v != default.cache_type_v:
        out += ["-ctv", lower[config.cache_type_v]]
    if not config.kv_offload:
        out += ["-nkvo"]
    if not config.repack:
        out += ["--no-repack"]
    if config.no_host:
        out += ["--no-host"]
    if not config.op_offload:
        out += ["--no-op-offload"]
    if config.load_mode != default.load_mode:
        out += ["--load-mode", config.load_mode]
    if config.lazy_mode != default.lazy_mode:
        out += ["--lazy-mode", config.lazy_mode]
    if config.n_gpu_layers != default.n_gpu_layers:
        ngl = config.n_gpu_layers
        out += ["-ngl", "all" if ngl == -2 else str(ngl)]  # -1 is the default (auto)
    if config.split_mode != default.split_mode:
        out += ["-sm", config.split_mode]
    if config.tensor_split:
        out += ["-ts", ",".join(_format_float(x) for x in config.tensor_split)]
    if config.main_gpu != default.main_gpu:
        out += ["-mg", str(config.main_gpu)]
    if config.overrides:
        for rule in config.overrides:
            if "," in rule.pattern:
                raise BadInput(f"-ot pattern {rule.pattern!r} contains a comma")
        out += ["-ot", ",".join(f"{r.pattern}={r.buffer_type}" for r in config.overrides)]
    if not config.fit:
        out += ["--fit", "off"]
    if config.fit_target_mib != default.fit_target_mib:
        out += ["--fit-target", ",".join(str(x) for x in config.fit_target_mib)]
    if config.fit_min_ctx not in (default.fit_min_ctx, UINT32_MAX):
        out += ["--fit-ctx", str(config.fit_min_ctx)]
    out += list(config.passthrough)
    return out
