"""What a measured run means for its profile: predicted vs measured, how ``fit test`` shows
it (text and JSON), and the conf edits.

The edits go through ``ModelsConf`` (``set_value``/``set_comments``), so every byte of
``models.conf`` outside the changed lines stays as it was; ``edit_conf`` reads and writes under
the file's lock, atomically with a ``.bak``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from profiles.fidelity import measured_memory
from profiles.models_conf import UNTESTED_MARK, ModelsConf, edit_conf, join_args, split_args
from profiles.runs import RunRecord
from solver.llama.arg_edit import without_options
from solver.quantities import MIB
from solver.text_table import rows_table
from solver.tune.tuner import TuneSettings

TESTED_WORDS = "by fit test"
TUNED_WORDS = "by fit tune"


class Comparison(BaseModel):
    """One predicted-vs-measured line; ``error`` is (predicted - measured) / measured."""

    model_config = ConfigDict(frozen=True)

    what: str
    unit: str
    predicted: float | None
    measured: float | None

    @property
    def error(self) -> float | None:
        if self.predicted is None or not self.measured:
            return None
        return (self.predicted - self.measured) / self.measured


def comparisons(record: RunRecord) -> list[Comparison]:
    """Memory per device (compute buffers left out on both sides when fit does not model
    them) and decode / prompt speed."""
    rows: list[Comparison] = []
    prediction, report = record.prediction, record.report
    with_compute = prediction is not None and prediction.compute_bytes is not None
    measured = measured_memory(report, with_compute=with_compute) if report else {}
    predicted_memory = prediction.memory_bytes if prediction else {}
    for device in dict.fromkeys([*predicted_memory, *measured]):
        logged = measured.get(device)
        seen = None if logged is None else logged.approx_bytes
        guess = predicted_memory.get(device)
        if guess is not None and with_compute and prediction and prediction.compute_bytes:
            guess += prediction.compute_bytes.get(device, 0)
        label = f"{device} memory" + ("" if with_compute else " (without compute buffers)")
        rows.append(
            Comparison(
                what=label,
                unit="MiB",
                predicted=None if guess is None else guess / MIB,
                measured=None if seen is None else seen / MIB,
            )
        )
    for what, predicted, measured_tps in (
        ("decode", prediction.decode_tps if prediction else None, record.decode_tps),
        ("prompt", prediction.prefill_tps if prediction else None, record.prompt_tps),
    ):
        rows.append(Comparison(what=what, unit="t/s", predicted=predicted, measured=measured_tps))
    return rows


def _one_decimal(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def comparison_text(record: RunRecord) -> str:
    """The predicted / measured / error table of ``comparisons``."""
    rows = [
        {
            "": f"{row.what} ({row.unit})",
            "predicted": _one_decimal(row.predicted),
            "measured": _one_decimal(row.measured),
            "error": "-" if row.error is None else f"{row.error:+.1%}",
        }
        for row in comparisons(record)
    ]
    return rows_table(rows)


def record_json(record: RunRecord, run_file: Path) -> dict[str, Any]:
    """The ``fit test --json`` document: the outcome, the comparison rows, where the run is."""
    return {
        "profile": record.profile,
        "ok": record.ok,
        "failure": record.failure,
        "decode_tps": record.decode_tps,
        "prompt_tps": record.prompt_tps,
        "comparison": [{**row.model_dump(), "error": row.error} for row in comparisons(record)],
        "prediction": record.prediction.model_dump() if record.prediction else None,
        "prediction_error": record.prediction_error,
        "run_file": str(run_file),
        "log": record.log_path,
    }


def outcome_text(record: RunRecord, run_file: Path, conf_path: Path, coefficients_note: str) -> str:
    """What ``fit test`` prints: the command, where it loaded, the comparison, the rates and
    coefficients behind the prediction, notes, the first log warnings, and what was written."""
    report = record.report
    lines = [f"[{record.profile}] {join_args(record.args)}"]
    if record.ok and report is not None:
        devices = ", ".join(report.per_device()) or "CPU"
        graph = report.graph
        splits = f", {graph.pp_splits} graph splits" if graph else ""
        lines.append(f"loaded on {devices}: context {report.context.n_ctx}{splits}")
    lines += ["", comparison_text(record), ""]
    prediction = record.prediction
    if prediction is not None and prediction.rate_sources:
        rates = ", ".join(f"{d}: {s}" for d, s in prediction.rate_sources.items())
        lines.append(f"rates: {rates}")
    lines.append(coefficients_note)
    if record.prediction_error:
        lines.append(f"not predicted: {record.prediction_error}")
    for note in (*record.notes, *(prediction.notes if prediction else ())):
        lines.append(f"note: {note}")
    if report is not None and report.warnings:
        lines.append(f"log warnings ({len(report.warnings)}):")
        lines += [f"  {w}" for w in report.warnings[:5]]
    lines.append(f"run saved: {run_file}")
    if record.ok:
        lines.append(f"{conf_path}: SPEED={speed_text(record.decode_tps)}, marked tested")
    return "\n".join(lines)


def speed_text(tps: float) -> str:
    """SPEED as the example workspace writes it: '112 t/s' (one decimal below 10)."""
    return f"{tps:.1f} t/s" if tps < 10 else f"{tps:.0f} t/s"


def tested_line(record: RunRecord, today: dt.date) -> str:
    """The dated comment ``fit test`` leaves, with the measured figures."""
    parts = [f"decode {record.decode_tps or 0:.1f} t/s", f"prompt {record.prompt_tps or 0:.0f} t/s"]
    report = record.report
    if report is not None:
        memory = ", ".join(
            f"{device} {logged.total.printed_mib:.0f} MiB"
            for device, logged in report.per_device().items()
        )
        if memory:
            parts.append(memory)
        if report.graph is not None:
            parts.append(f"{report.graph.pp_splits} graph splits")
    return f"# Tested {today.isoformat()} {TESTED_WORDS}: {'; '.join(parts)}."


def _replace_comment(comments: Sequence[str], line: str, replaces: Sequence[str]) -> list[str]:
    """``comments`` with the first line containing any of ``replaces`` swapped for ``line``
    (later such lines dropped), or ``line`` appended when none does."""
    out: list[str] = []
    placed = False
    for comment in comments:
        if any(words in comment for words in replaces):
            if not placed:
                out.append(line)
                placed = True
            continue
        out.append(comment)
    return out if placed else [*out, line]


def mark_tested(
    conf_path: Path, profile_id: str, record: RunRecord, *, today: dt.date | None = None
) -> Path:
    """SPEED := the measured decode speed; ``NOT YET TESTED`` (or an earlier tested line)
    := a dated tested line. Nothing else in the file changes."""
    if not record.ok or record.decode_tps is None:
        raise ValueError("only a measured run marks a profile tested")
    line = tested_line(record, today or dt.date.today())
    speed = speed_text(record.decode_tps)

    def change(conf: ModelsConf) -> None:
        comments = conf.profile(profile_id).comments
        conf.set_comments(
            profile_id, _replace_comment(comments, line, (UNTESTED_MARK, TESTED_WORDS))
        )
        conf.set_value(profile_id, "SPEED", speed)

    edit_conf(conf_path, change)
    return Path(conf_path)


def apply_settings(
    conf_path: Path,
    profile_id: str,
    settings: TuneSettings,
    *,
    study: str,
    trial: int,
    decode_tps: float | None,
    prompt_tps: float | None,
    today: dt.date | None = None,
) -> Path:
    """Write tuned settings into the profile: ``N_GPU_LAYERS`` when -ngl was tuned, the other
    flags into ``EXTRA_ARGS`` (replacing earlier values of the same options, wherever they
    were), and a comment naming the study and the measured speed."""
    speeds = ", ".join(
        f"{what} {value:.1f} t/s"
        for what, value in (("decode", decode_tps), ("prompt", prompt_tps))
        if value is not None
    )
    line = (
        f"# Tuned {(today or dt.date.today()).isoformat()} {TUNED_WORDS} "
        f"(study {study}, trial {trial}): measured {speeds}."
    )

    def change(conf: ModelsConf) -> None:
        profile = conf.profile(profile_id)
        extra = split_args(profile.get("EXTRA_ARGS") or "")
        extra = [*without_options(extra, settings.replaced_keys()), *settings.args()]
        conf.set_comments(profile_id, _replace_comment(profile.comments, line, (TUNED_WORDS,)))
        if settings.n_gpu_layers is not None:
            conf.set_value(profile_id, "N_GPU_LAYERS", str(settings.n_gpu_layers))
        conf.set_value(profile_id, "EXTRA_ARGS", join_args(extra))

    edit_conf(conf_path, change)
    return Path(conf_path)
