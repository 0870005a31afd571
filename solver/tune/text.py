"""What ``fit tune`` shows: one line per finished trial, then every trial as a table and the
best one; or all of it as JSON. Pure functions of Optuna trials; the CLI only prints them."""

from __future__ import annotations

from typing import Any

from optuna.trial import FrozenTrial

from solver.text_table import rows_table
from solver.tune.tuner import TuneOutcome

NOTE_WIDTH = 60


def trial_reason(trial: FrozenTrial) -> str:
    """Why a trial was pruned or failed ('' when it completed)."""
    attrs = trial.user_attrs
    return attrs.get("pruned_reason") or attrs.get("failure") or ""


def params_text(trial: FrozenTrial) -> str:
    """``ubatch=512 batch=2048 threads=1``; floats to three significant digits."""
    return " ".join(
        f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in trial.params.items()
    )


def trial_line(trial: FrozenTrial) -> str:
    """``trial 2: pruned 20.3 t/s  ubatch=300 ... (why)``: one trial as it finishes."""
    value = "" if trial.value is None else f" {trial.value:.1f} t/s"
    reason = trial_reason(trial).splitlines()[0:1]
    why = f" ({reason[0]})" if reason else ""
    return f"trial {trial.number}: {trial.state.name.lower()}{value}  {params_text(trial)}{why}"


def trial_row(trial: FrozenTrial) -> dict[str, Any]:
    """One table row: state, measured speeds, parameters and the first words of the reason."""
    attrs = trial.user_attrs

    def speed(key: str) -> str:
        value = attrs.get(key)
        return "-" if value is None else f"{value:.1f}"

    reason = trial_reason(trial).splitlines()[0:1]
    return {
        "trial": trial.number,
        "state": trial.state.name.lower(),
        "decode t/s": speed("decode_tps"),
        "prompt t/s": speed("prompt_tps"),
        "params": params_text(trial),
        "note": (reason[0][:NOTE_WIDTH] if reason else ""),
    }


def trial_json(trial: FrozenTrial) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value,
        "params": trial.params,
        "user_attrs": trial.user_attrs,
    }


def tune_json(outcome: TuneOutcome) -> dict[str, Any]:
    """The ``fit tune --json`` document."""
    return {
        "study": outcome.study,
        "storage": outcome.storage,
        "best": None if outcome.best is None else outcome.best.number,
        "applied_to": None if outcome.applied_to is None else str(outcome.applied_to),
        "verdict": None if outcome.verdict is None else outcome.verdict.model_dump(),
        "trials": [trial_json(t) for t in outcome.trials],
    }


def tune_text(outcome: TuneOutcome, profile_id: str) -> str:
    """A blank line, the trials table, the best trial's arguments, and where it was applied."""
    lines = ["", rows_table([trial_row(t) for t in outcome.trials])]
    best = outcome.best
    if best is not None:
        lines.append(
            f"best: trial {best.number}, {outcome.objective.value} {best.value:.1f} t/s: "
            f"{' '.join(best.user_attrs.get('args', []))}"
        )
    if outcome.verdict is not None:
        lines.append(f"apply: {outcome.verdict.reason}")
    if outcome.applied_to is not None:
        lines.append(
            f"applied to [{profile_id}] in {outcome.applied_to}; run `fit test {profile_id}`"
        )
    return "\n".join(lines)
