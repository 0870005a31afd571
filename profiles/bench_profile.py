"""``fit bench-profile PROFILE``: the ``[bench-<id>]`` profile EvalPlus runs against.

A bench profile is its production profile set up for a benchmark rather than a chat:

1. Context 10240 tokens (``BENCH_CONTEXT``: HumanEval's longest prompt plus EvalPlus's 768
   new tokens stays under about 8.4K tokens) and ``-b 512 -ub 512``: the placement is solved
   again for that workload, so the smaller KV cache and compute buffers let more layers go to
   the GPUs than the production profile's context allows.
2. No sampler flags: EvalPlus sends temperature 0 itself, and a profile's ``--temp`` or
   ``--top-k`` would only blur what greedy decoding means. Every option in the
   ``sampling params`` section of llama-server's ``--help`` is dropped
   (``solver.llama.options.sampling_option_keys``).
3. ``--reasoning-format none`` for a thinking model (its chat template opens a think block),
   so the chain of thought stays in the content field EvalPlus reads.
4. The user's other arguments (``--jinja``, threads, ...) are kept, after fit's own.

Then the benchmark's data follow (``profiles.bench_data``): the client's system prompt in
``bench-client.conf`` where the model needs one, its display name, its entry in the
reference-score map, and the benchmark README's profiles table (``profiles.docs``). Bench
profiles are found by their ``bench-`` prefix; nothing else registers them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from profiles.bench_data import BenchEntry, record_bench_entry
from profiles.docs import sync_docs
from profiles.launch import profile_launch
from profiles.models_conf import ModelsConf, Profile, join_args
from profiles.planning import PlacementOutcome, PlacementRequest, solve_for_profile
from profiles.profile_writer import (
    FIT_FLAGS,
    NewProfile,
    arg_groups,
    merged_extra_args,
    production_profile,
    write_profile,
)
from profiles.workspace import Workspace, bench_id, is_bench_profile
from solver.errors import BadInput
from solver.gguf.inventory import Inventory
from solver.llama.options import sampling_option_keys
from solver.placement.setting import SolveRequest

BENCH_CONTEXT = 10240
BENCH_BATCH = 512
REASONING_NONE = ("--reasoning-format", "none")
BENCH_DESCRIPTION = "EvalPlus profile"
# Chat-template markers of a model that thinks before it answers (Qwen3, DeepSeek-R1,
# GLM-4.5+, gpt-oss's analysis channel), read from the GGUF's tokenizer.chat_template.
THINKING_MARKERS = ("<think>", "enable_thinking", "reasoning_content", "<|channel|>analysis")


class BenchProfileOutcome(BaseModel):
    """What ``fit bench-profile`` wrote."""

    model_config = ConfigDict(frozen=True)

    profile_id: str
    bench_profile_id: str
    conf_path: Path
    keys: tuple[tuple[str, str], ...]
    thinking: bool
    dropped_samplers: tuple[str, ...]
    decode_tps: float
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {**self.model_dump(mode="json", exclude={"keys"}), "keys": dict(self.keys)}


def chat_template(inventory: Inventory) -> str:
    value = inventory.metadata.get("tokenizer.chat_template")
    return value if isinstance(value, str) else ""


def is_thinking(inventory: Inventory) -> bool:
    """Whether the model's chat template has a thinking block (``THINKING_MARKERS``)."""
    template = chat_template(inventory)
    return any(marker in template for marker in THINKING_MARKERS)


def make_bench_profile(
    conf_path: Path, profile_id: str, *, rig: str = "detect", force: bool = False
) -> BenchProfileOutcome:
    """Steps 1-4 of the module docstring, then the benchmark's data; ``BadInput`` for a
    bench profile given as PROFILE or a production profile that is not there."""
    if is_bench_profile(profile_id):
        raise BadInput(f"[{profile_id}] is a bench profile; name its production profile")
    conf = ModelsConf.read(conf_path)
    production = conf.profile(profile_id)
    launch = profile_launch(conf, conf_path, profile_id)
    outcome = solve_for_profile(
        PlacementRequest(model=str(launch.model), rig=rig, solve=bench_request(production))
    )
    outcome.raise_unless_feasible()
    thinking = is_thinking(outcome.inventory)
    new, dropped = bench_section(outcome, production, thinking=thinking)
    write = write_profile(conf_path, new, force=force)
    record_bench_entry(
        Workspace.of(conf_path),
        BenchEntry(
            bench_profile=new.profile_id, display_name=production.get("NAME") or profile_id,
            architecture=outcome.inventory.architecture,
        ),
    )  # fmt: skip
    sync_docs(conf_path, only=("bench_readme",))
    return BenchProfileOutcome(
        profile_id=profile_id, bench_profile_id=new.profile_id, conf_path=conf_path,
        keys=new.keys, thinking=thinking, dropped_samplers=dropped,
        decode_tps=outcome.report.decode_tps, notes=write.notes,
    )  # fmt: skip


def bench_request(production: Profile) -> SolveRequest:
    """Step 1: the bench workload, keeping the production profile's KV type, flash attention
    and slots where it sets them."""
    values = {group.key: group.args[1:] for group in arg_groups(production.get("EXTRA_ARGS", ""))}
    fields: dict[str, object] = {
        "contexts": (BENCH_CONTEXT,), "n_batch": BENCH_BATCH, "n_ubatch": BENCH_BATCH,
    }  # fmt: skip
    if values.get("--cache-type-k"):
        fields["kv_types"] = (values["--cache-type-k"][0],)
    if values.get("--flash-attn"):
        fields["flash_attn"] = values["--flash-attn"][0]
    if values.get("--parallel"):
        fields["parallel"] = int(values["--parallel"][0])
    return SolveRequest(**fields)


def bench_section(
    outcome: PlacementOutcome, production: Profile, *, thinking: bool
) -> tuple[NewProfile, tuple[str, ...]]:
    """The ``[bench-<id>]`` keys and comments, and the sampler arguments left out."""
    profile_id = bench_id(production.id)
    new = production_profile(
        outcome.report, outcome.inventory, outcome.rig.hardware, profile_id=profile_id,
        model_path=production.get("MODEL") or "", description=BENCH_DESCRIPTION,
        name=f"{production.get('NAME') or production.id} (bench)",
    )  # fmt: skip
    keys = dict(new.keys)
    extra, dropped = bench_extra_args(production.get("EXTRA_ARGS", ""), keys, thinking=thinking)
    keys["EXTRA_ARGS"] = extra
    comments = (*new.comments[:-1], bench_comment(production.id), new.comments[-1])
    return new.model_copy(update={"keys": tuple(keys.items()), "comments": comments}), dropped


def bench_comment(production_profile_id: str) -> str:
    """The line saying where a bench profile came from (``profile_writer.is_fit_comment``
    knows it, so a rewrite replaces it)."""
    return (
        f"Bench profile of [{production_profile_id}] for EvalPlus: context {BENCH_CONTEXT}, "
        f"-b/-ub {BENCH_BATCH}, no sampler flags."
    )


def bench_extra_args(
    production_extra: str, keys: dict[str, str], *, thinking: bool
) -> tuple[str, tuple[str, ...]]:
    """Steps 2-4: fit's bench arguments, then the production profile's own arguments
    without fit's flags (the bench solve replaces them) and without sampler flags."""
    samplers = sampling_option_keys()
    groups = arg_groups(production_extra)
    dropped = tuple(group.text for group in groups if group.key in samplers)
    kept = [g for g in groups if g.key not in samplers and g.key != REASONING_NONE[0]]
    user = " ".join(g.text for g in kept if g.key not in FIT_FLAGS)
    fit_value = keys["EXTRA_ARGS"]
    if thinking:
        fit_value = f"{fit_value} {join_args(REASONING_NONE)}".strip()
    value, _ = merged_extra_args(user, fit_value, keys)
    return value, tuple(dropped)


def describe_bench(outcome: BenchProfileOutcome) -> str:
    """The human text of ``fit bench-profile``."""
    keys = dict(outcome.keys)
    lines = [
        f"wrote [{outcome.bench_profile_id}] to {outcome.conf_path} (from [{outcome.profile_id}])",
        f"  CTX_SIZE={keys['CTX_SIZE']} N_GPU_LAYERS={keys['N_GPU_LAYERS']} FIT={keys['FIT']}",
        f"  EXTRA_ARGS={keys['EXTRA_ARGS']}",
        f"  estimated decode ~{outcome.decode_tps:.0f} t/s",
    ]
    if outcome.dropped_samplers:
        shown = ", ".join(outcome.dropped_samplers)
        lines.append(f"  left out sampler flags (EvalPlus sends temperature 0): {shown}")
    if outcome.thinking:
        lines.append("  thinking model: --reasoning-format none keeps its reasoning in content")
    lines += [f"note: {note}" for note in outcome.notes]
    return "\n".join(lines)
