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
- There is no ``--no-mmap`` or ``--mlock`` in this version: ``--load-mode`` replaces them.

Values are checked as llama-server checks them (``std::stoi``/``std::stoull``/``std::stof``,
the handlers' own ranges and allowed values), and so are the values ``arg.cpp`` lets through
but the pinned server cannot start with (``_check_startup``: a negative context, a batch
smaller than the server's slots, more than ``LLAMA_MAX_SEQ`` slots...). Where a negative
number is only an unsigned wrap-around (``-ub``, ``--fit-ctx``, ``--fit-target``) fit refuses
it and says what llama-server would make of it, rather than model an accident.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from solver.errors import BadInput
from solver.llama.options import (
    IGNORED_INT_OPTIONS,
    RETIRED_SPELLINGS,
    OptionKind,
    ServerOption,
    option_kind,
    server_options,
    unmodelled_effect,
)
from solver.quantities import MIB

LLAMA_MAX_DEVICES = 16  # llama_max_devices()
LLAMA_MAX_SEQ = 256  # src/llama-cparams.h: llama_context refuses more sequences
AUTO_SLOTS = 4  # tools/server: -np -1 (auto) serves 4 slots
MIN_BATCH = 2  # the pinned server aborts (get_sub_batch) when a batch holds fewer tokens
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
FLT_MAX = float(np.finfo(np.float32).max)
FLT_MIN = float(np.finfo(np.float32).tiny)  # smallest normal float32

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


def _stoull(value: str, option: str) -> int:
    """``std::stoull`` (``strtoull``): blanks, a sign, digits; a minus sign wraps modulo 2^64,
    more than 2^64-1 is out of range. Trailing text is ignored."""
    match = re.match(r"\s*([+-]?)(\d+)", value)
    if match is None:
        raise BadInput(f"llama-server argument {option}: '{value}' is not an integer")
    number = int(match.group(2))
    if number > UINT64_MAX:
        raise BadInput(f"llama-server argument {option}: '{value}' is out of range")
    return (-number) % 2**64 if match.group(1) == "-" else number


_FLOAT = re.compile(
    r"\s*([+-]?)("
    r"0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?"
    r"|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
    r"|(?i:infinity|inf|nan(?:\([0-9A-Za-z_]*\))?)"
    r")"
)


def _stof(value: str, option: str) -> float:
    """``std::stof`` (``strtof``): the longest leading float (decimal, hexadecimal, inf or
    nan); a finite value beyond float's range, or one that underflows, is out of range."""
    match = _FLOAT.match(value)
    if match is None:
        raise BadInput(f"llama-server argument {option}: '{value}' is not a number")
    sign, body = match.groups()
    if body[:2].lower() == "0x":
        number = float.fromhex(body)
    elif body[:1].isalpha():
        number = float("nan" if body[:1] in "nN" else "inf")
    else:
        number = float(body)
    number = -number if sign == "-" else number
    if math.isfinite(number) and number != 0 and not FLT_MIN <= abs(number) <= FLT_MAX:
        raise BadInput(f"llama-server argument {option}: '{value}' is out of range")
    return number


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


def _not_negative(number: int, option: str, what: str, consequence: str) -> int:
    """A count the C++ side stores unsigned: a negative one wraps to a huge number.

    ``consequence`` says what the pinned llama-server does with the wrapped value."""
    if number < 0:
        raise BadInput(
            f"llama-server argument {option}: {number} is not a {what} (0 or more); "
            f"llama-server reads it unsigned, as {number % 2**32}, and {consequence}"
        )
    return number


def _fit_target(part: str, option: str) -> int:
    """One ``--fit-target`` margin: ``std::stoull(part) * 1024*1024`` in a ``size_t``."""
    mib = _stoull(part, option)
    if part.lstrip().startswith("-"):
        raise BadInput(
            f"llama-server argument {option}: '{part}' is not a margin in MiB (0 or more); "
            f"std::stoull wraps it to {mib}"
        )
    if mib * MIB > UINT64_MAX:
        raise BadInput(
            f"llama-server argument {option}: {mib} MiB overflows llama-server's byte count"
        )
    return mib


def _tensor_split(value: str, option: str) -> tuple[float, ...]:
    """``-ts``: ``std::stof`` per part. The loader divides each cumulative proportion by their
    sum, so a non-finite proportion, or a sum of 0 with a proportion that is not, leaves every
    layer's device undefined; llama-server does not check, fit refuses."""
    split = tuple(_stof(part, option) for part in _split_list(value, option))
    if not all(math.isfinite(x) for x in split):
        raise BadInput(
            f"llama-server argument {option}: '{value}': every proportion must be a finite "
            "number (the loader divides by their sum)"
        )
    if any(split) and sum(np.float32(x) for x in split) == 0:
        raise BadInput(
            f"llama-server argument {option}: '{value}': the proportions add up to 0 (the "
            "loader divides by their sum)"
        )
    return split


def _check_ignored_value(option: ServerOption, arg: str, values: Sequence[str]) -> None:
    """An option fit ignores still has its value checked as its handler checks it."""
    allowed = IGNORED_INT_OPTIONS.get(option.key)
    if allowed is None:
        return
    number = _stoi(values[0], arg)
    if not allowed.minimum <= number <= allowed.maximum or number in allowed.excluded:
        raise BadInput(f"llama-server argument {arg}: invalid value {number}")


def _check_startup(config: LaunchConfig) -> None:
    """Values ``arg.cpp`` accepts but the pinned llama-server cannot start with.

    Measured on the pinned build: a batch (``-b``, and the context it is clamped to) of one
    token aborts in ``get_sub_batch``; a batch smaller than the server's slots aborts with
    ``GGML_ASSERT(n_outputs_max <= cparams.n_outputs_max)`` (each slot needs one output of
    the batch: ``server_output_limits``)."""
    slots = config.n_parallel if config.n_parallel > 0 else AUTO_SLOTS
    least = max(MIN_BATCH, slots)
    if config.n_batch < least:
        why = (
            f"it must hold one token for each of the {slots} server slots (-np)"
            if slots > MIN_BATCH
            else f"the pinned llama-server aborts at startup below {MIN_BATCH} tokens"
        )
        tokens = f"{config.n_batch} token{_plural(config.n_batch)}"
        raise BadInput(
            f"llama-server argument -b: a batch of {tokens} is too small: {why}; "
            f"use -b {least} or more"
        )
    if 0 < config.n_ctx < MIN_BATCH:
        raise BadInput(
            f"llama-server argument -c: a context of {config.n_ctx} token is too small: "
            f"llama-server clamps the batch to it and aborts at startup below {MIN_BATCH} "
            f"tokens; use -c {MIN_BATCH} or more (or -c 0 for the model's own)"
        )


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


def _refuse_unknown(spelled: str, arg: str) -> BadInput:
    """An argument the pinned llama-server does not know: it would stop with ``error:
    invalid argument``. A flag older versions had names its replacement."""
    replaced = RETIRED_SPELLINGS.get(arg)
    if replaced is not None:
        return BadInput(
            f"invalid argument {spelled}: the pinned llama-server has no {arg} (it would stop "
            f"with 'error: invalid argument: {spelled}'); this version uses {replaced}"
        )
    return BadInput(
        f"invalid argument {spelled}: not an option of the pinned llama-server (it would stop "
        f"with 'error: invalid argument: {spelled}')"
    )


def _refuse_unmodelled(option: ServerOption, arg: str) -> BadInput:
    """A valid option whose effect on memory fit does not size: what it changes, what fit
    would need. fit refuses it rather than estimate the wrong thing."""
    effect = unmodelled_effect(option)
    changes = effect.changes if effect else "it changes what llama-server allocates"
    needs = effect.needs if effect else "a model of that effect"
    return BadInput(
        f"{arg} is a valid llama-server option that fit does not model ({changes}); "
        f"fit would need {needs}"
    )


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
            f["n_ctx"] = _not_negative(_stoi(value, arg), arg, "context size", "cannot start")
            if f["n_ctx"] == 0:
                f["fit_min_ctx"] = UINT32_MAX  # -c 0: the user wants the full context
        case "--batch-size":
            f["n_batch"] = _stoi(value, arg)  # its range depends on -np: _check_startup
        case "--ubatch-size":
            f["n_ubatch"] = _not_negative(
                _stoi(value, arg), arg, "micro-batch size",
                "uses the whole batch (-b) as the micro-batch, which -ub 0 says",
            )  # fmt: skip
        case "--parallel":
            n = _stoi(value, arg)
            if n == 0:
                raise BadInput("llama-server argument --parallel: invalid value for n_parallel")
            if n > LLAMA_MAX_SEQ:
                raise BadInput(
                    f"llama-server argument {arg}: {n} slots are more than the "
                    f"{LLAMA_MAX_SEQ} sequences llama.cpp allows (LLAMA_MAX_SEQ); llama-server "
                    "cannot create its context"
                )
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
            f["tensor_split"] = _tensor_split(value, arg)
        case "--main-gpu":
            f["main_gpu"] = _stoi(value, arg)
        case "--fit":
            f["fit"] = _on_off_auto(value, arg, allow_auto=False) == "on"
        case "--fit-target":
            f["fit_target_mib"] = tuple(_fit_target(part, arg) for part in _split_list(value, arg))
        case "--fit-ctx":
            f["fit_min_ctx"] = _not_negative(
                _stoi(value, arg), arg, "context size", "never lets --fit shorten the context"
            )
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
            raise _refuse_unknown(args[i], arg)
        if option.n_values and i + option.n_values >= len(args):
            raise BadInput(f"llama-server argument {arg}: expected value for argument")
        values = list(args[i + 1 : i + 1 + option.n_values])
        kind = option_kind(option)
        if kind is OptionKind.MEMORY:
            _apply_memory_option(state, option, arg, values[0] if values else "")
        elif kind is OptionKind.IGNORED:
            _check_ignored_value(option, arg, values)
            state.passthrough.extend([args[i], *values])
        elif kind is OptionKind.NO_SERVER:
            raise BadInput(f"llama-server argument {arg} prints information and exits")
        else:
            raise _refuse_unmodelled(option, arg)
        i += 1 + option.n_values
    config = LaunchConfig(
        **state.fields,
        overrides=tuple(state.overrides),
        rpc_servers=tuple(state.rpc_servers),
        passthrough=tuple(state.passthrough),
    )
    _check_startup(config)
    return config


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
    if config.n_ctx != default.n_ctx or config.fit_min_ctx == UINT32_MAX:
        out += ["-c", str(config.n_ctx)]  # an explicit -c 0 also stops --fit shortening it
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
