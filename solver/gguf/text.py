"""What ``fit inspect`` shows: an inventory as JSON or as human-readable lines.

Pure functions from an ``Inventory`` to data or text; the CLI only prints them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from solver.gguf.inventory import Inventory
from solver.quantities import GIB, MIB
from solver.text_table import format_table, terminal_safe


def inventory_json(inventory: Inventory) -> dict[str, Any]:
    """One JSON object: summary numbers first, then hyperparameters, metadata and tensors."""
    dump = inventory.model_dump(mode="json", by_alias=True)
    summary = {
        "source": inventory.source,
        "architecture": inventory.architecture,
        "name": inventory.name,
        "file_type": inventory.file_type,
        "n_layers": inventory.n_layers,
        "n_layers_nextn": inventory.n_layers_nextn,
        "n_embd": inventory.n_embd,
        "n_vocab": inventory.n_vocab,
        "context_length": inventory.context_length,
        "n_tensors": inventory.n_tensors,
        "n_params": inventory.n_params,
        "total_bytes": inventory.total_bytes,
        "bytes_by_type": inventory.bytes_by_type(),
        "bytes_by_group": {str(group): n for group, n in inventory.bytes_by_group().items()},
    }
    return {**summary, **{key: value for key, value in dump.items() if key not in summary}}


def _range(values: Sequence[int]) -> str:
    low, high = min(values, default=0), max(values, default=0)
    return str(low) if low == high else f"{low}-{high}"


def _count_true(flags: Sequence[bool]) -> int:
    return sum(1 for flag in flags if flag)


def _params(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def _gib(n: int) -> str:
    return f"{n / GIB:.3f} GiB"


def summary_lines(inventory: Inventory) -> list[str]:
    """The model at a glance: one ``label  value`` line per fact that applies to it."""
    inv = inventory
    att = inv.attention
    rows: list[tuple[str, str]] = [
        ("model", PurePath(inv.source).name if "://" not in inv.source else inv.source),
        ("architecture", f"{inv.architecture}" + (f" ({inv.name})" if inv.name else "")),
        ("quant", inv.file_type or "unknown"),
    ]
    layers = str(inv.n_layers)
    if inv.n_layers_nextn:
        layers += f" ({inv.n_layers_nextn} MTP/nextn)"
    rows += [
        ("layers", layers),
        ("embedding", str(inv.n_embd)),
        ("heads", f"{_range(att.n_head)} query / {_range(att.n_head_kv)} KV"),
        ("head dims", f"K {att.key_length}, V {att.value_length}, rope {att.rope_dim}"),
        ("context", str(inv.context_length)),
        ("vocabulary", str(inv.n_vocab)),
    ]
    if inv.is_moe:
        ex = inv.experts
        rows.append(
            (
                "experts",
                f"{ex.count}, {ex.used} used per token, {ex.shared} shared; "
                f"expert FFN {ex.feed_forward_length}, shared FFN {ex.shared_feed_forward_length}",
            )
        )
        rows.append(("leading dense", f"{ex.leading_dense_layers} layers"))
    if max(inv.n_ff, default=0):
        rows.append(("dense FFN", f"{_range([w for w in inv.n_ff if w])}"))
    if att.swa_type != "none":
        rows.append(
            (
                "sliding window",
                f"{att.sliding_window} tokens ({att.swa_type}) on "
                f"{_count_true(att.swa_layers)} of {inv.n_layers} layers",
            )
        )
    if att.kv_lora_rank:
        rows.append(
            (
                "MLA",
                f"kv_lora_rank {att.kv_lora_rank}, q_lora_rank {att.q_lora_rank}, "
                f"K {att.key_length_mla}, V {att.value_length_mla}",
            )
        )
    if att.n_layer_kv_from_start >= 0:
        rows.append(("KV layers", f"first {att.n_layer_kv_from_start}; later layers share them"))
    if inv.recurrent is not None:
        rec = inv.recurrent
        rows.append(
            (
                "SSM",
                f"conv {rec.conv_kernel}, inner {rec.inner_size}, state {rec.state_size}, "
                f"dt rank {rec.time_step_rank}, groups {rec.group_count}; "
                f"{_count_true(rec.recurrent_layers)} of {inv.n_layers} layers recurrent",
            )
        )
    files = {0: "", 1: " (1 file)"}.get(len(inv.files), f" ({len(inv.files)} files)")
    rows += [
        ("parameters", _params(inv.n_params)),
        ("size", f"{_gib(inv.total_bytes)} in {inv.n_tensors} tensors{files}"),
        (
            "by type",
            ", ".join(f"{name} {_gib(n)}" for name, n in inv.bytes_by_type().items()),
        ),
    ]
    width = max(len(label) for label, _ in rows)
    # the name and the source are the file's or the user's text: escaped for the terminal
    return [f"{label.ljust(width)}  {terminal_safe(value)}" for label, value in rows]


def role_table(inventory: Inventory) -> list[str]:
    """Tensor count and bytes per placement group and role, biggest groups first."""
    count: Counter[tuple[str, str]] = Counter()
    size: Counter[tuple[str, str]] = Counter()
    group_bytes: Counter[str] = Counter()
    for tensor in inventory.tensors:
        key = (str(tensor.group), tensor.role)
        count[key] += 1
        size[key] += tensor.n_bytes
        group_bytes[str(tensor.group)] += tensor.n_bytes
    keys = sorted(size, key=lambda k: (-group_bytes[k[0]], k[0], -size[k], k[1]))
    rows = [(g, r, count[(g, r)], size[(g, r)], round(size[(g, r)] / MIB, 1)) for g, r in keys]
    return format_table(("group", "role", "count", "bytes", "MiB"), rows)


def tensor_table(inventory: Inventory) -> list[str]:
    """Every tensor in file order."""
    rows = [
        (
            t.name,
            t.type,
            "x".join(str(d) for d in t.shape),
            t.n_bytes,
            "" if t.layer is None else t.layer,
            str(t.group),
            t.file_index,
        )
        for t in inventory.tensors
    ]
    return format_table(("name", "type", "shape", "bytes", "layer", "group", "file"), rows)


def inventory_text(inventory: Inventory, *, with_tensors: bool = False) -> str:
    """What ``fit inspect`` prints: the summary, bytes per group and role, and with
    ``with_tensors`` every tensor."""
    lines = [*summary_lines(inventory), "", *role_table(inventory)]
    if with_tensors:
        lines += ["", *tensor_table(inventory)]
    return "\n".join(lines)
