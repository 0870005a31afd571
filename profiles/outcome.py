"""What a measured run means for its profile: predicted vs measured, and the conf edits.

The edits go through ``ModelsConf`` (``set_value``/``set_comments``), so every byte of
``models.conf`` outside the changed lines stays as it was; the write is atomic with a ``.bak``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from profiles.fidelity import measured_memory
from profiles.models_conf import UNTESTED_MARK, ModelsConf, join_args, split_args
from profiles.runs import RunRecord
from solver.arg_edit import without_options
from solver.tune import TuneSettings

MIB = 1024 * 1024
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
    conf = ModelsConf.read(conf_path)
    profile = conf.profile(profile_id)
    line = tested_line(record, today or dt.date.today())
    conf.set_comments(
        profile_id, _replace_comment(profile.comments, line, (UNTESTED_MARK, TESTED_WORDS))
    )
    conf.set_value(profile_id, "SPEED", speed_text(record.decode_tps))
    return conf.write(conf_path)


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
    conf = ModelsConf.read(conf_path)
    profile = conf.profile(profile_id)
    extra = split_args(profile.get("EXTRA_ARGS") or "")
    extra = [*without_options(extra, settings.replaced_keys()), *settings.args()]
    speeds = ", ".join(
        f"{what} {value:.1f} t/s"
        for what, value in (("decode", decode_tps), ("prompt", prompt_tps))
        if value is not None
    )
    line = (
        f"# Tuned {(today or dt.date.today()).isoformat()} {TUNED_WORDS} "
        f"(study {study}, trial {trial}): measured {speeds}."
    )
    conf.set_comments(profile_id, _replace_comment(profile.comments, line, (TUNED_WORDS,)))
    if settings.n_gpu_layers is not None:
        conf.set_value(profile_id, "N_GPU_LAYERS", str(settings.n_gpu_layers))
    conf.set_value(profile_id, "EXTRA_ARGS", join_args(extra))
    return conf.write(conf_path)
