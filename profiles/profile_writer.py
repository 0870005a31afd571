"""Turn a solve into a ``models.conf`` production profile a person can trust.

The section follows the workspace's format (``../shared/examples/workspace/models.conf``):
comments above the header say what the model is and where that came from, which strategy was
chosen and why, the memory budget per device, and ``NOT YET TESTED`` until ``fit test``
measures it. ``-c``, ``-ngl`` and ``--fit`` live in their own keys; everything else the solver
decided goes to ``EXTRA_ARGS``.

A new profile goes before the ``# --- Bench profiles`` divider when the file has one (bench
profiles, ``bench-*``, go at the end). Rewriting an existing profile (untested, or with
``--force``) replaces only what fit owns and keeps every byte of the rest:

- keys: SPEED, MODEL, CTX_SIZE, N_GPU_LAYERS and FIT are fit's. NAME and DESCRIPTION are
  labels: replaced when given (``--name``, ``--description``) or while they still hold fit's
  default; a label the user wrote stays. Unknown keys stay.
- comments: the lines fit writes (the solve's block, ``fit test``'s and ``fit tune``'s dated
  lines; ``is_fit_comment``) are replaced by the new block, line for line in their places
  (``ModelsConf.replace_comments``; after the user's lines when the user deleted them all);
  every other comment, above the header or between keys, keeps its bytes and its place.
- EXTRA_ARGS: fit owns the first occurrence of each option the solve decides (``FIT_FLAGS``;
  fit writes its arguments first). Those are replaced by the new plan's; every other
  argument stays, in its order and with its own quoting and spacing, after fit's. A later
  occurrence of a fit option is the user's override and wins, since llama-server uses the
  last value given; so do ``-c``/``-ngl``/``--fit``/``-m`` in EXTRA_ARGS (start.sh puts
  EXTRA_ARGS after the keys). ``-ot`` adds rules instead, and llama.cpp applies the first
  rule matching a tensor, so a user's ``-ot`` decides only tensors fit's rules leave alone.
  ``ProfileWrite.notes`` names each kept user flag that differs from fit's new value, or
  that changes memory use where fit's plan did not count on it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from profiles.models_conf import (
    UNTESTED_MARK,
    ModelsConf,
    check_overwrite,
    check_writable,
    edit_conf,
    join_args,
    quote_arg,
    split_args,
)
from solver.errors import BadInput
from solver.gguf.inventory import Inventory
from solver.hardware.scenario import Hardware
from solver.llama.options import MEMORY_OPTIONS, server_options
from solver.placement.solve import SolveReport
from solver.plan.units import Unit, unit_of
from solver.quantities import GIB

OWN_KEYS = {"-c": "CTX_SIZE", "-ngl": "N_GPU_LAYERS", "--fit": "FIT"}

# Options (ServerOption.key) a solve decides and writes to EXTRA_ARGS: workload_args,
# device_args and placement_args in solver.placement / solver.plan (a test checks the list).
FIT_FLAGS = frozenset(
    {
        "--batch-size", "--ubatch-size", "--flash-attn", "--cache-type-k", "--cache-type-v",
        "--parallel", "--rpc", "--tensor-split", "--override-tensor", "--n-cpu-moe",
    }
)  # fmt: skip
# Options with a key of their own: in EXTRA_ARGS they can only be the user's, and they win.
KEYED_FLAGS = {
    "--ctx-size": "CTX_SIZE", "--gpu-layers": "N_GPU_LAYERS", "--fit": "FIT", "--model": "MODEL",
}  # fmt: skip
# The divider of the example workspace: "# --- Bench profiles (EvalPlus; ...) -------------".
BENCH_DIVIDER = re.compile(r"^\s*#[\s-]*Bench profiles\b", re.IGNORECASE)

_DESCRIBED = (
    r"# (?P<name>.+) \((?:\d+\.\dB-A\d+\.\dB MoE|\d+\.\dB dense), \d+ layers[^()]*, "
    r"(?P<file_type>[^,()]+)\)"
)
_FIT_COMMENTS = (
    _DESCRIBED,  # describe_model
    r"# Architecture: \S+, read from the (?:fit catalogue \(published hyperparameters\)"
    r"|GGUF header)\.",
    r"# Strategy [A-Z]: .+ — .+\.",
    r"# Memory budget: .+",
    r"# Placed by fit solve on .+; estimated decode \d+ t/s\.",
    rf"# {UNTESTED_MARK} — run `fit test \S+` to measure it\.",
    r"# Tested \d{4}-\d{2}-\d{2} by fit test: .*",  # profiles.outcome.tested_line
    r"# Tuned \d{4}-\d{2}-\d{2} by fit tune .*",  # profiles.outcome.apply_settings
    r"# Bench profile of \[\S+\] for EvalPlus: .+",  # profiles.bench_profile.bench_comment
)
_FIT_COMMENT = re.compile("|".join(f"(?:{pattern})" for pattern in _FIT_COMMENTS))
_FIT_DESCRIPTION = re.compile(r"Placed by fit \(.+\)")


class NewProfile(BaseModel):
    model_config = ConfigDict(frozen=True)

    profile_id: str
    keys: tuple[tuple[str, str], ...]
    comments: tuple[str, ...]
    label_defaults: tuple[str, ...] = Field(
        default=(), description="label keys (NAME, DESCRIPTION) holding fit's default, not given"
    )


class ProfileWrite(BaseModel):
    """Where a profile went, and each user setting kept over fit's new value."""

    model_config = ConfigDict(frozen=True)

    path: Path
    notes: tuple[str, ...] = ()


def active_params(inventory: Inventory) -> int:
    """Parameters a token uses: everything but the routed experts it does not pick."""
    total = 0
    share = inventory.experts.used / inventory.experts.count if inventory.is_moe else 1.0
    for tensor in inventory.tensors:
        is_expert = unit_of(tensor) is Unit.EXPERTS
        total += round(tensor.n_elements * share) if is_expert else tensor.n_elements
    return total


def describe_model(inventory: Inventory) -> str:
    """'GPT-OSS-120B (116.8B-A5.1B MoE, 36 layers, 128 experts, 4 active, MXFP4)'."""
    billions = inventory.n_params / 1e9
    name = inventory.name or inventory.architecture
    if inventory.is_moe:
        e = inventory.experts
        shared = f" + {e.shared} shared" if e.shared else ""
        shape = (
            f"{billions:.1f}B-A{active_params(inventory) / 1e9:.1f}B MoE, {inventory.n_layers} "
            f"layers, {e.count} experts{shared}, {e.used} active"
        )
    else:
        a = inventory.attention
        heads = f", GQA {max(a.n_head)}/{max(a.n_head_kv)}" if a.n_head else ""
        shape = f"{billions:.1f}B dense, {inventory.n_layers} layers{heads}"
    return f"{name} ({shape}, {inventory.file_type})"


def _budget_line(report: SolveReport) -> str:
    parts = []
    for name, d in report.devices.items():
        parts.append(
            f"{name} {d.resident / GIB:.1f}/{d.budget / GIB:.1f} GiB "
            f"(weights {(d.weights + d.repack - d.total + d.resident) / GIB:.1f}, "
            f"KV {d.kv / GIB:.1f}, "
            f"compute {d.compute / GIB:.1f})"
        )
    return "Memory budget: " + "; ".join(parts)


def production_profile(
    report: SolveReport,
    inventory: Inventory,
    hardware: Hardware,
    *,
    profile_id: str,
    model_path: str,
    name: str | None = None,
    description: str | None = None,
    today: dt.date | None = None,
) -> NewProfile:
    """The keys and comment block of a new profile; nothing is written here."""
    if not report.feasible or report.plan is None:
        raise ValueError("only a feasible solve becomes a profile")
    today = today or dt.date.today()
    args = list(report.args)
    own: dict[str, str] = {}
    extra: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in OWN_KEYS:
            own[OWN_KEYS[args[i]]] = args[i + 1]
            i += 2
            continue
        extra.append(args[i])
        i += 1
    source = (
        "fit catalogue (published hyperparameters)"
        if inventory.source.startswith("catalogue:")
        else "GGUF header"
    )
    gap = "" if report.gap is None else f", gap {report.gap:.2%}"
    comments = (
        describe_model(inventory),
        f"Architecture: {inventory.architecture}, read from the {source}.",
        f"Strategy {report.strategy}: {report.strategy_title} — {report.rationale}.",
        _budget_line(report),
        f"Placed by fit solve on {hardware.name} ({report.status.value}{gap}), "
        f"{today.isoformat()}; estimated decode {report.decode_tps:.0f} t/s.",
        f"{UNTESTED_MARK} — run `fit test {profile_id}` to measure it.",
    )
    keys = (
        ("NAME", name or f"{inventory.name or inventory.architecture} {inventory.file_type}"),
        ("DESCRIPTION", description or f"Placed by fit ({report.strategy_title})"),
        ("SPEED", f"~{report.decode_tps:.0f} t/s (estimated)"),
        ("MODEL", model_path),
        ("CTX_SIZE", own.get("CTX_SIZE", str(report.context))),
        ("N_GPU_LAYERS", own.get("N_GPU_LAYERS", "0")),
        ("FIT", own.get("FIT", "off")),
        ("EXTRA_ARGS", join_args(extra)),
    )
    return NewProfile(
        profile_id=profile_id, keys=keys, comments=comments,
        label_defaults=_label_defaults(name, description),
    )  # fmt: skip


def _label_defaults(name: str | None, description: str | None) -> tuple[str, ...]:
    """The labels fit fills in itself because the user gave none."""
    return tuple(key for key, given in (("NAME", name), ("DESCRIPTION", description)) if not given)


def write_profile(conf_path: Path, profile: NewProfile, *, force: bool = False) -> ProfileWrite:
    """Add the profile, or update an untested one (a tested one only with force), keeping
    what the user wrote (see the module docstring).

    The read, the edit and the atomic write (with a ``.bak``) happen under the file's lock.
    """
    notes = edit_conf(
        conf_path, lambda conf: place_profile(conf, profile, force=force), create=True
    )
    return ProfileWrite(path=conf_path, notes=notes)


def check_profile_target(
    conf_path: Path,
    profile_id: str,
    *,
    model_path: str,
    name: str | None = None,
    description: str | None = None,
    force: bool = False,
) -> None:
    """Raise ``BadInput`` now for anything ``write_profile`` would refuse after a solve: an
    unreadable or malformed conf file, a folder it cannot be written to, a bad profile id or
    value, a tested profile of that id without ``force``.

    It runs the very edit ``write_profile`` makes, on a copy in memory, with the keys the
    user chose and placeholders for those the solve decides, so the two cannot drift apart.
    """
    check_writable(conf_path)
    keys = (
        ("NAME", name or "-"),
        ("DESCRIPTION", description or "-"),
        ("MODEL", model_path),
        ("EXTRA_ARGS", ""),
    )
    placeholder = NewProfile(
        profile_id=profile_id, keys=keys, comments=(UNTESTED_MARK,),
        label_defaults=_label_defaults(name, description),
    )  # fmt: skip
    conf = ModelsConf.read(conf_path) if conf_path.exists() else ModelsConf("", str(conf_path))
    place_profile(conf, placeholder, force=force)


def place_profile(conf: ModelsConf, profile: NewProfile, *, force: bool) -> tuple[str, ...]:
    """Add the profile to ``conf`` (before the bench divider unless it is a bench profile),
    or rewrite the existing one keeping what the user wrote. Returns the notes of user
    settings kept over fit's new values."""
    profile_id = profile.profile_id
    if profile_id not in conf:
        divider = None if profile_id.startswith("bench-") else BENCH_DIVIDER
        conf.add_profile(
            profile_id, profile.keys, comments=profile.comments, before_comment=divider
        )
        return ()
    old = conf.profile(profile_id)
    check_overwrite(old, force=force)
    conf.replace_comments(profile_id, is_fit_comment, profile.comments)
    notes: list[str] = []
    new_keys = dict(profile.keys)
    for key, value in profile.keys:
        previous = old.get(key)
        if (
            key in profile.label_defaults
            and previous is not None
            and not _is_fit_label(key, previous, old.comments)
        ):
            continue  # a label the user wrote, and none given now
        if key == "EXTRA_ARGS":
            where = f"{conf.source}: [{profile_id}] EXTRA_ARGS"
            value, kept = merged_extra_args(previous or "", value, new_keys, where=where)
            notes += [f"[{profile_id}] {note}" for note in kept]
        conf.set_value(profile_id, key, value)
    return tuple(notes)


def is_fit_comment(line: str) -> bool:
    """Whether fit wrote this comment line (``fit solve``'s block, ``fit test``'s or
    ``fit tune``'s dated line): the lines a rewrite may replace."""
    return _FIT_COMMENT.fullmatch(line.strip()) is not None


def _is_fit_label(key: str, value: str, comments: Sequence[str]) -> bool:
    """Whether a NAME or DESCRIPTION still holds what fit writes when none is given."""
    if key == "DESCRIPTION":
        return _FIT_DESCRIPTION.fullmatch(value) is not None
    described = (re.fullmatch(_DESCRIBED, line.strip()) for line in comments)
    names = {f"{m['name']} {m['file_type']}" for m in described if m}
    return value in names


# --- EXTRA_ARGS -------------------------------------------------------------------------------


class ArgGroup(BaseModel):
    """One option with its values (or one unknown argument), as written in EXTRA_ARGS."""

    model_config = ConfigDict(frozen=True)

    key: str | None = Field(description="ServerOption.key; None for an unknown argument")
    args: tuple[str, ...]
    text: str = Field(description="its source text, quoting and inner spacing as written")
    span: tuple[int, int] | None = Field(
        default=None, description="where ``text`` is in the value; None when requoted"
    )


def arg_groups(value: str, *, where: str = "EXTRA_ARGS") -> list[ArgGroup]:
    """``value`` split as a shell does, grouped by llama-server's options (an option and the
    values its ``--help`` says it takes); ``BadInput`` if it cannot be split."""
    try:
        args = split_args(value)
    except BadInput as error:
        raise BadInput(f"{where}: {error}") from None
    spans = _word_spans(value)
    if len(spans) != len(args) or any(
        split_args(value[start:end]) != [arg]
        for (start, end), arg in zip(spans, args, strict=False)
    ):
        spans = []  # not plain shell words: requote instead of copying the text
    table = server_options()
    groups = []
    i = 0
    while i < len(args):
        name = args[i].replace("_", "-") if args[i].startswith("--") else args[i]
        option = table.get(name)
        end = min(len(args), i + 1 + (option.n_values if option else 0))
        span = (spans[i][0], spans[end - 1][1]) if spans else None
        text = value[span[0] : span[1]] if span else join_args(args[i:end])
        key = option.key if option else None
        groups.append(ArgGroup(key=key, args=tuple(args[i:end]), text=text, span=span))
        i = end
    return groups


def _word_spans(value: str) -> list[tuple[int, int]]:
    """(start, end) of each shell word: whitespace outside quotes ends a word; a backslash
    outside quotes, or inside double quotes, makes the next character part of the word."""
    spans = []
    i, n = 0, len(value)
    while i < n:
        if value[i] in " \t\r\n":
            i += 1
            continue
        start, quote = i, None
        while i < n:
            char = value[i]
            if quote is None:
                if char in " \t\r\n":
                    break
                if char in "'\"":
                    quote = char
                elif char == "\\":
                    i += 1
            elif char == quote:
                quote = None
            elif quote == '"' and char == "\\":
                i += 1
            i += 1
        spans.append((start, min(i, n)))
    return spans


def merged_extra_args(
    old: str, fit_value: str, keys: Mapping[str, str], *, where: str = "EXTRA_ARGS"
) -> tuple[str, list[str]]:
    """The new EXTRA_ARGS: fit's arguments ``fit_value``, then every argument of ``old`` that
    is not fit's (see the module docstring). Also returns one note per kept user argument
    that overrides fit's new value or changes memory use in a way fit's plan did not price."""
    groups = arg_groups(old, where=where)
    fit_groups = {group.key: group for group in arg_groups(fit_value)}
    seen: set[str] = set()
    kept: list[ArgGroup] = []
    dropped: list[ArgGroup] = []
    for group in groups:
        if group.key in FIT_FLAGS and group.key not in seen:
            seen.add(group.key)
            if group.key not in fit_groups:
                dropped.append(group)
            continue  # fit's own occurrence: the new plan's replaces it
        kept.append(group)
    notes = [note for group in kept if (note := _override_note(group, fit_groups, keys))]
    notes += [
        f"{where}: removed {' '.join(quote_arg(arg) for arg in group.args)}, taken as fit's "
        "earlier plan (the new plan does not use it); if it was yours, give it twice"
        for group in dropped
    ]
    value = " ".join(part for part in (fit_value, *_runs(old, groups, kept)) if part)
    return value, notes


def _runs(value: str, groups: Sequence[ArgGroup], kept: Sequence[ArgGroup]) -> list[str]:
    """The kept groups' text, each run of neighbours as one slice of ``value`` so the
    spacing between them stays as written."""
    chosen = {id(group) for group in kept}
    runs: list[str] = []
    start: int | None = None  # where the current run of kept neighbours begins in value
    for group in groups:
        if id(group) not in chosen:
            start = None
        elif start is not None and group.span is not None:
            runs[-1] = value[start : group.span[1]]
        else:
            runs.append(group.text)
            start = group.span[0] if group.span else None
    return runs


def _override_note(
    group: ArgGroup, fit_groups: Mapping[str | None, ArgGroup], keys: Mapping[str, str]
) -> str | None:
    yours = " ".join(quote_arg(arg) for arg in group.args)
    fit = fit_groups.get(group.key)
    if group.key == "--override-tensor" and fit is not None:
        return (
            f"EXTRA_ARGS: kept your {yours} after fit's {fit.text}; llama.cpp uses the first "
            "-ot rule matching a tensor, so fit's rules decide the tensors both match"
        )
    if group.key in FIT_FLAGS and fit is not None:
        if fit.args[1:] == group.args[1:]:
            return None
        return f"EXTRA_ARGS: kept your {yours} over fit's {fit.text} (llama-server uses the last)"
    if group.key in KEYED_FLAGS:
        key = KEYED_FLAGS[group.key]
        if keys.get(key) is not None and group.args[1:] == (keys[key],):
            return None
        return (
            f"EXTRA_ARGS: kept your {yours} over fit's {key}={keys.get(key, '')} "
            "(EXTRA_ARGS comes last on the command line)"
        )
    if group.key in MEMORY_OPTIONS:  # fit's options it no longer writes are among these
        return (
            f"EXTRA_ARGS: kept your {yours}; fit's plan does not include it, so its memory "
            "and speed estimates may not hold"
        )
    return None


# --- sampler flags (fit samplers --write) -----------------------------------------------------


def with_options(
    value: str, new: Sequence[str], *, where: str = "EXTRA_ARGS"
) -> tuple[str, list[str]]:
    """``value`` with the options of ``new`` (llama-server arguments, one value each) set:
    the first occurrence of each is replaced where it stands, an option not there yet is
    appended; every other argument keeps its text, order and spacing. A later occurrence
    (the user's override, which llama-server lets win) stays as it is, and a note says so."""
    wanted = {group.key: group for group in arg_groups(join_args(new))}
    groups = arg_groups(value, where=where)
    replaced: set[str | None] = set()
    parts, cursor = [], 0
    for group in groups:
        if group.key in wanted and group.key not in replaced and group.span is not None:
            replaced.add(group.key)
            if not _same_values(group.args, wanted[group.key].args):  # "0.0" stays for 0
                parts += [value[cursor : group.span[0]], wanted[group.key].text]
                cursor = group.span[1]
    if any(group.span is None for group in groups):  # requoted: rebuild from the groups
        texts = []
        for group in groups:
            if group.key in wanted and group.key not in replaced:
                replaced.add(group.key)
                same = _same_values(group.args, wanted[group.key].args)
                texts.append(group.text if same else wanted[group.key].text)
            else:
                texts.append(group.text)
        result = " ".join(texts)
    else:
        result = "".join([*parts, value[cursor:]])
    added = [group.text for key, group in wanted.items() if key not in replaced]
    seen: set[str | None] = set()
    notes = []
    for group in groups:
        later = group.key in wanted and group.key in seen
        if later and not _same_values(group.args, wanted[group.key].args):
            notes.append(
                f"{where}: kept your later {group.text} over {wanted[group.key].text} "
                "(llama-server uses the last)"
            )
        seen.add(group.key)
    return " ".join(part for part in (result.rstrip(), *added) if part), notes


def _same_values(old: Sequence[str], new: Sequence[str]) -> bool:
    """The same option with equal values, numbers compared as numbers ("0.0" == "0")."""
    if len(old) != len(new):
        return False
    for a, b in zip(old, new, strict=True):
        try:
            if a != b and float(a) != float(b):
                return False
        except ValueError:
            return False
    return True


def set_profile_options(conf_path: Path, profile_id: str, new: Sequence[str]) -> ProfileWrite:
    """Set ``new`` options in the profile's EXTRA_ARGS (``with_options``), under the conf's
    lock, atomically with a ``.bak``; ``BadInput`` when the profile does not exist."""

    def change(conf: ModelsConf) -> list[str]:
        if profile_id not in conf:
            known = ", ".join(conf.ids) or "none"
            raise BadInput(f"{conf_path}: no profile [{profile_id}] (profiles: {known})")
        old = conf.profile(profile_id).get("EXTRA_ARGS", "") or ""
        value, notes = with_options(old, new)
        conf.set_value(profile_id, "EXTRA_ARGS", value)
        return notes

    if not conf_path.is_file():
        raise BadInput(f"{conf_path}: no such file (give --conf)")
    return ProfileWrite(path=conf_path, notes=tuple(edit_conf(conf_path, change)))
