"""Turn a solve into a ``models.conf`` production profile a person can trust.

The section follows the workspace's format (``../shared/examples/workspace/models.conf``):
comments above the header say what the model is and where that came from, which strategy was
chosen and why, the memory budget per device, and ``NOT YET TESTED`` until ``fit test``
measures it. ``-c``, ``-ngl`` and ``--fit`` live in their own keys; everything else the solver
decided goes to ``EXTRA_ARGS``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from profiles.models_conf import UNTESTED_MARK, ModelsConf, check_overwrite, join_args
from solver.errors import BadInput
from solver.gguf.inventory import Inventory
from solver.hardware.scenario import Hardware
from solver.placement.solve import SolveReport
from solver.plan.units import Unit, unit_of
from solver.quantities import GIB

OWN_KEYS = {"-c": "CTX_SIZE", "-ngl": "N_GPU_LAYERS", "--fit": "FIT"}


class NewProfile(BaseModel):
    model_config = ConfigDict(frozen=True)

    profile_id: str
    keys: tuple[tuple[str, str], ...]
    comments: tuple[str, ...]


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
    return NewProfile(profile_id=profile_id, keys=keys, comments=comments)


def write_profile(conf_path: Path, profile: NewProfile, *, force: bool = False) -> Path:
    """Add the profile, or update an untested one in place (a tested one only with force).

    Every other byte of the file is kept; the write is atomic with a ``.bak``.
    """
    return _conf_with(conf_path, profile, force=force).write(conf_path)


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
    folder = conf_path.parent
    if not folder.is_dir():
        raise BadInput(f"{conf_path}: its folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise BadInput(f"{conf_path}: cannot write in {folder}")
    keys = (("NAME", name or "-"), ("DESCRIPTION", description or "-"), ("MODEL", model_path))
    placeholder = NewProfile(profile_id=profile_id, keys=keys, comments=(UNTESTED_MARK,))
    _conf_with(conf_path, placeholder, force=force)


def _conf_with(conf_path: Path, profile: NewProfile, *, force: bool) -> ModelsConf:
    """The conf file (empty if it does not exist yet) with the profile added or updated."""
    conf = ModelsConf.read(conf_path) if conf_path.exists() else ModelsConf("", str(conf_path))
    if profile.profile_id in conf:
        check_overwrite(conf.profile(profile.profile_id), force=force)
        conf.set_comments(profile.profile_id, profile.comments)
        for key, value in profile.keys:
            conf.set_value(profile.profile_id, key, value)
    else:
        conf.add_profile(profile.profile_id, profile.keys, comments=profile.comments)
    return conf
