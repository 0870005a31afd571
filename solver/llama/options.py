"""Every option the pinned llama-server accepts, and whether it can change memory use.

The option names and their arity come from the pinned build's own ``llama-server --help``
(``data/llama_server_help.txt``), so the table cannot drift from what the binary parses. On
top of that table fit keeps two explicit lists: options it interprets (they change what
llama.cpp allocates) and options it accepts and ignores because they cannot change any
startup buffer (sampling, HTTP, logging, threads...). Any other option is one fit does not
model, and saying so is better than estimating the wrong thing.
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


def option_kind(option: ServerOption) -> OptionKind:
    if option.key in MEMORY_OPTIONS:
        return OptionKind.MEMORY
    if option.key in IGNORED_OPTIONS:
        return OptionKind.IGNORED
    if option.key in NO_SERVER_OPTIONS:
        return OptionKind.NO_SERVER
    return OptionKind.UNMODELLED
