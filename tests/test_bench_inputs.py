"""fit bench, fit report, fit init and fit add on their own inputs, without a server: stored
runs as fit bench writes them, reference scores, the workspace skeleton, bad input."""

from __future__ import annotations

import json
from pathlib import Path

from profiles.bench_run import BenchRun
from profiles.workspace import Workspace
from tests.workspace_support import example_workspace, invoke, json_of


def _run(profile: str, started: str, base: int, plus: int, limit: int | None) -> BenchRun:
    return BenchRun(
        profile=profile, display_name=profile.upper(), model="m.gguf", dataset="humaneval",
        problems=164 if limit is None else limit, limit=limit, dataset_source="EvalPlus",
        started=started, finished=started, llama_build="build 6500 (abc1234) with cc for x",
        base_pass=base, plus_pass=plus, decode_tps=40.25, samples="s.jsonl",
        eval_results="e.json",
    )  # fmt: skip


def _store(workspace: Workspace, run: BenchRun, name: str) -> None:
    folder = workspace.results / run.profile / name
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(run.model_dump_json())


def test_report_takes_the_latest_run_and_the_reference(tmp_path: Path) -> None:
    conf = example_workspace(tmp_path)
    workspace = Workspace.of(conf)
    _store(workspace, _run("bench-a", "2026-01-01T10:00:00Z", 100, 90, None), "old")
    _store(workspace, _run("bench-a", "2026-02-01T10:00:00Z", 150, 140, None), "new")
    _store(workspace, _run("bench-b", "2026-02-02T10:00:00Z", 2, 1, 3), "limited")
    workspace.reference_scores.write_text(json.dumps({
        "bench-a": {"humaneval": {"base": 90.0, "plus": 86.0, "source": "card"}},
        "bench-b": {"humaneval": {"base": 50.0}},
    }))  # fmt: skip
    result = invoke("report", "--conf", str(conf), "--json")
    assert result.exit_code == 0, result.output
    first, second = json_of(result)["rows"]
    # best plus first; 150/164 = 91.5 %, 140/164 = 85.4 %
    assert (first["Bench profile"], first["pass@1"], first["pass@1+"]) == (
        "bench-a",
        "91.5",
        "85.4",
    )
    assert (first["Δ"], first["Δ+"], first["Date"]) == ("+1.5", "-0.6", "2026-02-01")
    assert first["llama.cpp"] == "build 6500 (abc1234)" and first["t/s"] == "40.2"
    # a --limit run is not the benchmark the reference measured: no difference
    assert (second["Problems"], second["Reference"], second["Δ"]) == ("3", "50.0", "-")
    text = workspace.report.read_text()
    assert invoke("report", "--conf", str(conf)).exit_code == 0
    assert workspace.report.read_text() == text


def test_bad_stored_files_are_one_line_exit_2(tmp_path: Path) -> None:
    conf = example_workspace(tmp_path)
    workspace = Workspace.of(conf)
    workspace.reference_scores.parent.mkdir(parents=True, exist_ok=True)
    workspace.reference_scores.write_text('{"bench-a": {"humaneval": {"base": 150}}}')
    result = invoke("report", "--conf", str(conf))
    assert result.exit_code == 2
    assert "reference-scores.json: [bench-a] humaneval.base:" in result.stderr
    workspace.reference_scores.write_text("{}")
    (workspace.results / "bench-a" / "x").mkdir(parents=True)
    (workspace.results / "bench-a" / "x" / "run.json").write_text('{"profile": 1}')
    result = invoke("report", "--conf", str(conf))
    assert result.exit_code == 2 and "run.json: not a fit bench run" in result.stderr
    assert "Traceback" not in result.output


def test_bench_wants_a_bench_profile(tmp_path: Path) -> None:
    conf = example_workspace(tmp_path)
    result = invoke("bench", "glm-flash-q8", "--conf", str(conf), "--json")
    assert result.exit_code == 2
    assert "is not a bench profile" in json_of(result)["error"]["message"]


def test_init_makes_a_workspace_that_agrees_and_keeps_what_is_there(tmp_path: Path) -> None:
    made = invoke("init", str(tmp_path / "llm"), "--json")
    assert made.exit_code == 0, made.output
    assert len(json_of(made)) == 4
    conf = tmp_path / "llm" / "models.conf"
    assert invoke("docs", "check", "--conf", str(conf)).exit_code == 0
    conf.write_text(conf.read_text() + "# mine\n")
    again = invoke("init", str(tmp_path / "llm"))
    assert again.exit_code == 0 and "already a workspace" in again.output
    assert conf.read_text().endswith("# mine\n")


def test_add_refuses_bad_steps_and_a_broken_state(tmp_path: Path) -> None:
    conf = example_workspace(tmp_path)
    skipped = invoke("add", "org/model-GGUF", "--conf", str(conf), "--skip", "download")
    assert skipped.exit_code == 2 and "later steps need it" in skipped.stderr
    state = tmp_path / ".fit" / "add" / "org--model-GGUF.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json")
    broken = invoke("add", "org/model-GGUF", "--conf", str(conf))
    assert broken.exit_code == 2 and "not fit add's state" in broken.stderr
