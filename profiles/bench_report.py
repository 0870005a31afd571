"""``fit report``: ``results/REPORT.md`` from the stored EvalPlus runs, with pandas.

Every ``run.json`` under the results folder (``profiles.bench_run.BenchRun``) is one row;
the latest run of each (bench profile, dataset) is reported, best plus score first. Next to
pass@1 (base tests, and base + EvalPlus's extra tests) stand the published reference scores
of ``reference-scores.json`` and the difference in percentage points — only for runs of the
whole dataset, since the first N problems are not the benchmark the reference measured.
The file depends on the stored runs alone (no time of writing), so the same runs give the
same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from profiles.bench_data import Score, reference_scores
from profiles.bench_run import BenchRun
from profiles.models_conf import write_atomic
from profiles.workspace import Workspace
from solver.errors import BadInput

COLUMNS = (
    "Model", "Bench profile", "Dataset", "Problems", "pass@1", "pass@1+", "Reference",
    "Reference+", "Δ", "Δ+", "t/s", "Date", "llama.cpp",
)  # fmt: skip
INTRO = (
    "# EvalPlus results\n\n"
    "Written by `fit report` from the runs stored under this folder: the latest run of each "
    "bench profile and dataset. pass@1 in percent with greedy decoding (temperature 0); "
    "pass@1+ adds EvalPlus's extra tests. Reference: the published scores in "
    "`../reference-scores.json`; Δ = measured − reference in points, only for runs of the "
    "whole dataset. t/s: llama-server's own decode speed over the run's requests.\n"
)


class Report(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    rows: tuple[dict[str, str], ...]

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "rows": list(self.rows)}


def load_runs(results: Path) -> list[BenchRun]:
    runs = []
    for path in sorted(results.glob("*/*/run.json")):
        try:
            runs.append(BenchRun.model_validate_json(path.read_text(encoding="utf-8")))
        except (OSError, ValidationError) as error:
            raise BadInput(f"{path}: not a fit bench run: {str(error).splitlines()[0]}") from None
    return runs


def _number(value: float | None) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.1f}"


def _difference(measured: float, reference: float | None, whole: bool) -> str:
    return "-" if reference is None or not whole else f"{measured - reference:+.1f}"


def _build(build: str | None) -> str:
    """'build 6500 (abc1234)' without the compiler and target."""
    return "-" if not build else build.split(" with ", 1)[0]


def latest_runs(runs: list[BenchRun]) -> pd.DataFrame:
    """One row per (profile, dataset): its latest run, best pass@1+ first."""
    frame = pd.DataFrame(
        [{**run.model_dump(), "pass1": run.pass_at_1, "plus1": run.plus_pass_at_1} for run in runs]
    )
    if frame.empty:
        return frame
    latest = frame.sort_values("started").groupby(["profile", "dataset"]).tail(1)
    return latest.sort_values(["dataset", "plus1", "profile"], ascending=[True, False, True])


def report_rows(frame: pd.DataFrame, scores: dict[str, dict[str, Score]]) -> list[dict[str, str]]:
    rows = []
    for run in frame.itertuples(index=False):
        score = scores.get(run.profile, {}).get(run.dataset, Score())
        whole = pd.isna(run.limit)
        rows.append(
            dict(zip(COLUMNS, (
                run.display_name, run.profile, run.dataset, str(run.problems),
                _number(run.pass1), _number(run.plus1), _number(score.base),
                _number(score.plus), _difference(run.pass1, score.base, whole),
                _difference(run.plus1, score.plus, whole), _number(run.decode_tps),
                run.started.strftime("%Y-%m-%d"), _build(run.llama_build),
            ), strict=True))
        )  # fmt: skip
    return rows


def render(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows]
    if not rows:
        lines.append("| " + " | ".join(["-"] * len(COLUMNS)) + " |")
    return INTRO + "\n" + "\n".join(lines) + "\n"


def write_report(conf_path: Path) -> Report:
    workspace = Workspace.of(conf_path)
    scores = reference_scores(workspace)  # read first: a broken file is named even with no runs
    frame = latest_runs(load_runs(workspace.results))
    rows = report_rows(frame, scores) if not frame.empty else []
    workspace.results.mkdir(parents=True, exist_ok=True)
    write_atomic(workspace.report, render(rows), backup=False)
    return Report(path=workspace.report, rows=tuple(rows))
