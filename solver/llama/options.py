"""Every option the pinned llama-server accepts, and whether it can change memory use.

The option names and their arity come from the pinned build's own ``llama-server --help``
(``data/llama_server_help.txt``), so the table cannot drift from what the binary parses. On
top of that table fit keeps two explicit lists: options it interprets (they change what
llama.cpp allocates) and options it accepts and ignores because they cannot change any
startup buffer (sampling, HTTP, logging, threads...). Any other option is one fit does not
model, and saying so is better than estimating the wrong thing: ``unmodelled_effect`` says
what each one changes and what fit would need. ``RETIRED_SPELLINGS`` names the flags older
versions had (``--mlock``, ``--no-mmap``) and what replaced them; ``IGNORED_INT_OPTIONS`` the
ignored options whose value llama-server still checks (an integer, sometimes a range).
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cache

from pydantic import BaseModel, ConfigDict

from solver.datafiles import read_data_text

HELP_FILE = "llama_server_help.txt"


class OptionKind(StrEnum):
    MEMORY = "memory"  # fit interprets it
    IGNORED = "ignored"  # accepted; cannot change a startup buffer
    UNMODELLED = "unmodelled"  # llama-server accepts it, fit cannot estimate its effect
    NO_SERVER = "no_server"  # prints something and exits instead of serving


class ServerOption(BaseModel):
    """One llama-server option: all its spellings and how many values follow it."""

    model_config = ConfigDict(frozen=True)

    names: tuple[str, ...]
    n_values: int
    value_hint: str = ""

    @property
    def key(self) -> str:
        """The option's first long spelling: the name fit's tables use."""
        return next((n for n in self.names if n.startswith("--")), self.names[0])


# Options whose effect on memory fit models (keys are ServerOption.key).
MEMORY_OPTIONS = frozenset(
    {
        "--ctx-size", "--batch-size", "--ubatch-size", "--swa-full", "--flash-attn",
        "--kv-offload", "--repack", "--no-host", "--cache-type-k", "--cache-type-v", "--rpc",
        "--load-mode", "--lazy-mode", "--device", "--override-tensor", "--cpu-moe",
        "--n-cpu-moe", "--n-cpu-ffn", "--gpu-layers", "--split-mode", "--tensor-split",
        "--main-gpu", "--fit", "--fit-target", "--fit-ctx", "--op-offload", "--parallel",
        "--kv-unified", "--kv-unified-per-slot", "--model",
    }
)  # fmt: skip

# Options that cannot change any buffer llama-server allocates at startup.
IGNORED_OPTIONS = frozenset(
    {
        # threads, affinity, scheduling
        "--threads", "--threads-batch", "--cpu-mask", "--cpu-range", "--cpu-strict", "--prio",
        "--poll", "--cpu-mask-batch", "--cpu-range-batch", "--cpu-strict-batch",
        "--prio-batch", "--poll-batch", "--numa",
        # generation and sampling (host-side, per request)
        "--predict", "--keep", "--samplers", "--seed", "--sampler-seq", "--ignore-eos",
        "--temp", "--top-k", "--top-p", "--min-p", "--top-nsigma", "--xtc-probability",
        "--xtc-threshold", "--typical", "--repeat-last-n", "--repeat-penalty",
        "--presence-penalty", "--frequency-penalty", "--dry-multiplier", "--dry-base",
        "--dry-allowed-length", "--dry-penalty-last-n", "--dry-sequence-breaker",
        "--adaptive-target", "--adaptive-decay", "--dynatemp-range", "--dynatemp-exp",
        "--mirostat", "--mirostat-lr", "--mirostat-ent", "--logit-bias", "--grammar",
        "--grammar-file", "--json-schema", "--json-schema-file", "--reverse-prompt",
        "--special", "--spm-infill",
        # RoPE/YaRN numbers change values, not shapes
        "--rope-scaling", "--rope-scale", "--rope-freq-base", "--rope-freq-scale",
        "--yarn-orig-ctx", "--yarn-ext-factor", "--yarn-attn-factor", "--yarn-beta-slow",
        "--yarn-beta-fast",
        # logging
        "--perf", "--escape", "--log-disable", "--log-file", "--log-jsonl", "--log-colors",
        "--verbose", "--offline", "--verbosity", "--log-prefix", "--log-timestamps",
        "--log-prompts-dir",
        # load checks and warmup
        "--check-tensors", "--warmup", "--defrag-thold",
        # HTTP server, chat templates, tools
        "--alias", "--tags", "--host", "--port", "--reuse-port", "--path", "--cors-origins",
        "--cors-methods", "--cors-headers", "--cors-credentials", "--api-prefix", "--ui-config",
        "--ui-config-file", "--ui-mcp-proxy", "--tools", "--tools-runtime",
        "--mcp-servers-config", "--mcp-servers-json", "--agent", "--ui", "--api-key",
        "--api-key-file", "--ssl-key-file", "--ssl-cert-file", "--chat-template-kwargs",
        "--timeout", "--sse-ping-interval", "--threads-http", "--cache-prompt", "--cache-reuse",
        "--metrics", "--props", "--slots", "--slot-save-path", "--media-path", "--jinja",
        "--reasoning-format", "--reasoning", "--reasoning-effort", "--reasoning-budget",
        "--reasoning-budget-message", "--reasoning-preserve", "--chat-template",
        "--chat-template-file", "--skip-chat-parsing", "--prefill-assistant",
        "--slot-prompt-similarity", "--sleep-idle-seconds", "--cont-batching",
        "--context-shift", "--cache-idle-slots", "--embd-normalize", "--models-dir",
        "--models-preset", "--models-max", "--models-autoload", "--lookup-cache-static",
        "--lookup-cache-dynamic", "--hf-token",
        # prompt cache and context checkpoints grow in host RAM while serving, not at startup
        "--cache-ram", "--ctx-checkpoints", "--checkpoint-min-step",
        # multimodal knobs that only matter with --mmproj (which is not modelled)
        "--mmproj-auto", "--mmproj-offload", "--image-min-tokens", "--image-max-tokens",
        "--mtmd-batch-max-tokens", "--video-fps", "--video-timestamp-interval",
        "--video-ffmpeg-dir", "--lora-init-without-apply",
    }
)  # fmt: skip

NO_SERVER_OPTIONS = frozenset(
    {"--help", "--version", "--cache-list", "--completion-bash", "--list-devices"}
)

# Spellings earlier llama.cpp versions accepted and the pinned one refuses ("error: invalid
# argument"), with what replaced them. --mlock is one: this version has no such flag, so it is
# neither modelled nor ignored but refused, as llama-server refuses it.
RETIRED_SPELLINGS = {
    "--mlock": "--load-mode mlock (or mmap+mlock to keep the mapping)",
    "--no-mmap": "--load-mode none",
    "--mmap": "--load-mode mmap",
    "--direct-io": "--load-mode dio",
    "-dio": "--load-mode dio",
}


class Unmodelled(BaseModel):
    """Why fit refuses a valid option: what it changes, and what fit would need to size it."""

    model_config = ConfigDict(frozen=True)

    changes: str
    needs: str


_SPECULATIVE = Unmodelled(
    changes="it sets up speculative decoding: a draft model, MTP heads or n-gram caches, with "
    "their own weights, KV cache and compute buffers",
    needs="the draft's inventory and a second context sized like the main one",
)
_PRESET = Unmodelled(
    changes="it downloads a preset model from the Hugging Face Hub and sets its context, "
    "batch and other options",
    needs="the preset spelled out: its model file as MODEL and its options as arguments",
)
_REMOTE_MODEL = Unmodelled(
    changes="it makes llama-server download and load a model instead of -m",
    needs="the model itself: give its file or hf://OWNER/REPO/FILE.gguf as MODEL",
)
_LORA = Unmodelled(
    changes="it loads LoRA adapter tensors next to the weights and adds their matmuls to the "
    "compute graph",
    needs="each adapter's tensors, where the loader places them, and the adapter ops",
)
_CONTROL_VECTOR = Unmodelled(
    changes="it loads a control vector tensor per layer and adds it to the compute graph",
    needs="the control vector files' tensors and where they are placed",
)
_EMBEDDING = Unmodelled(
    changes="it makes the context an embedding or reranking one: pooled outputs, another "
    "output buffer and graph",
    needs="the pooling graph and the embedding output buffer",
)
_MULTIMODAL = Unmodelled(
    changes="it loads a multimodal projector with its own weights and encoder compute buffers",
    needs="the projector file's inventory and its vision/audio encoder graph",
)

# Why each option of kind UNMODELLED is not modelled (keys are ServerOption.key); the
# speculative-decoding family is matched by prefix in ``unmodelled_effect``.
UNMODELLED_EFFECTS: dict[str, Unmodelled] = {
    "--override-kv": Unmodelled(
        changes="it rewrites the model's metadata at load time, so the hyperparameters every "
        "buffer is sized from may differ from the file's",
        needs="the overrides applied to the GGUF header before sizing",
    ),
    "--lora": _LORA,
    "--lora-scaled": _LORA,
    "--control-vector": _CONTROL_VECTOR,
    "--control-vector-scaled": _CONTROL_VECTOR,
    "--control-vector-layer-range": _CONTROL_VECTOR,
    "--model-url": _REMOTE_MODEL,
    "--docker-repo": _REMOTE_MODEL,
    "--hf-repo": _REMOTE_MODEL,
    "--hf-file": _REMOTE_MODEL,
    "--backend-sampling": Unmodelled(
        changes="it runs sampling on the backend: sampler buffers and graph nodes per slot",
        needs="the backend sampler's buffers and graph",
    ),
    "--pooling": _EMBEDDING,
    "--embedding": _EMBEDDING,
    "--rerank": _EMBEDDING,
    "--mmproj": _MULTIMODAL,
    "--mmproj-url": _MULTIMODAL,
    "--mmproj-device": _MULTIMODAL,
    "--embd-gemma-default": _PRESET,
    "--fim-qwen-1.5b-default": _PRESET,
    "--fim-qwen-3b-default": _PRESET,
    "--fim-qwen-7b-default": _PRESET,
    "--fim-qwen-30b-default": _PRESET,
    "--gpt-oss-20b-default": _PRESET,
    "--gpt-oss-120b-default": _PRESET,
    "--vision-gemma-4b-default": _PRESET,
    "--vision-gemma-12b-default": _PRESET,
    "--fim-qwen-7b-spec": _SPECULATIVE,
    "--fim-qwen-14b-spec": _SPECULATIVE,
}
_SPECULATIVE_PREFIXES = ("--spec-", "--draft")


def unmodelled_effect(option: ServerOption) -> Unmodelled | None:
    """What an option fit does not model changes, and what fit would need; None when the
    option has no entry (a test keeps every UNMODELLED option covered)."""
    if option.key.startswith(_SPECULATIVE_PREFIXES):
        return _SPECULATIVE
    return UNMODELLED_EFFECTS.get(option.key)


class IntValue(BaseModel):
    """An option whose handler takes an ``int`` (``std::stoi`` of the value) and the range its
    handler accepts; outside it the handler throws ``invalid_argument``."""

    model_config = ConfigDict(frozen=True)

    minimum: int = -(2**31)
    maximum: int = 2**31 - 1
    excluded: tuple[int, ...] = ()


# The IGNORED options whose handler in common/arg.cpp takes an int (read with std::stoi before
# the handler runs), with the ranges the handlers check. The memory options are checked where
# they are interpreted (``solver.llama.args``).
IGNORED_INT_OPTIONS: dict[str, IntValue] = {
    "--threads": IntValue(),
    "--threads-batch": IntValue(),
    "--prio": IntValue(minimum=-1, maximum=3),  # GGML_SCHED_PRIO_LOW..REALTIME
    "--cpu-strict-batch": IntValue(),
    "--prio-batch": IntValue(minimum=0, maximum=3),
    "--poll-batch": IntValue(),
    "--predict": IntValue(),
    "--keep": IntValue(),
    "--ctx-checkpoints": IntValue(),
    "--checkpoint-min-step": IntValue(minimum=0),
    "--cache-ram": IntValue(),
    "--top-k": IntValue(),
    "--repeat-last-n": IntValue(minimum=0),
    "--dry-allowed-length": IntValue(),
    "--dry-penalty-last-n": IntValue(minimum=0),
    "--mirostat": IntValue(),
    "--yarn-orig-ctx": IntValue(),
    "--image-min-tokens": IntValue(),
    "--image-max-tokens": IntValue(),
    "--mtmd-batch-max-tokens": IntValue(),
    "--video-timestamp-interval": IntValue(),
    "--embd-normalize": IntValue(),
    "--port": IntValue(),
    "--timeout": IntValue(),
    "--sse-ping-interval": IntValue(),
    "--threads-http": IntValue(),
    "--cache-reuse": IntValue(),
    "--models-max": IntValue(),
    "--reasoning-budget": IntValue(),
    "--sleep-idle-seconds": IntValue(minimum=-1, excluded=(0,)),
    "--verbosity": IntValue(),
}

_NAME = re.compile(r"(-{1,2}[A-Za-z0-9][A-Za-z0-9._-]*)")
_NAME_SEPARATOR = re.compile(r",\s*(?=-)")


def _parse_help_line(line: str) -> ServerOption | None:
    """``"-c,    --ctx-size N       size of..."`` -> names ("-c", "--ctx-size"), one value."""
    names: list[str] = []
    pos = 0
    while match := _NAME.match(line, pos):
        names.append(match.group(1))
        pos = match.end()
        separator = _NAME_SEPARATOR.match(line, pos)
        if separator is None:
            break
        pos = separator.end()
    if not names:
        return None
    rest = line[pos:]
    if not rest.startswith(" ") or rest.startswith("  "):
        return ServerOption(names=tuple(names), n_values=0)
    hint = re.split(r"\s{2,}", rest.strip())[0]
    # only --control-vector-layer-range takes two values; its hint is "START END"
    n_values = 2 if re.fullmatch(r"[A-Z_]+ [A-Z_]+", hint) else 1
    return ServerOption(names=tuple(names), n_values=n_values, value_hint=hint)


@cache
def server_options() -> dict[str, ServerOption]:
    """Every spelling llama-server accepts -> its option, from the pinned ``--help``."""
    text = read_data_text(HELP_FILE)
    table: dict[str, ServerOption] = {}
    for line in text.splitlines():
        if not line.startswith("-") or line.startswith("-----"):
            continue
        option = _parse_help_line(line)
        if option is not None:
            for name in option.names:
                table[name] = option
    return table


SAMPLING_SECTION = "----- sampling params -----"


@cache
def sampling_option_keys() -> frozenset[str]:
    """The options (``ServerOption.key``) llama-server's ``--help`` lists under sampling
    params: what a request's sampler does (temperature, top-k, penalties, grammar...)."""
    text = read_data_text(HELP_FILE)
    section = text.split(SAMPLING_SECTION, 1)[1].split("\n-----", 1)[0]
    keys = set()
    for line in section.splitlines():
        if line.startswith("-") and (option := _parse_help_line(line)) is not None:
            keys.add(option.key)
    return frozenset(keys)


def option_kind(option: ServerOption) -> OptionKind:
    if option.key in MEMORY_OPTIONS:
        return OptionKind.MEMORY
    if option.key in IGNORED_OPTIONS:
        return OptionKind.IGNORED
    if option.key in NO_SERVER_OPTIONS:
        return OptionKind.NO_SERVER
    return OptionKind.UNMODELLED
