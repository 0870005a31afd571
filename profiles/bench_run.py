"""``fit bench BENCH-PROFILE``: EvalPlus against the bench profile's own llama-server.

1. Read the bench profile (``bench-*``) and its client settings (system prompt).
2. Pick the problems: the whole dataset (EvalPlus loads HumanEval+ or MBPP+ itself, or the
   file its ``HUMANEVAL_OVERRIDE_PATH`` / ``MBPP_OVERRIDE_PATH`` names), or with ``--limit N``
   its first N problems, written to the run's folder and given to EvalPlus as its override
   (EvalPlus's evaluation wants a sample for every problem of its dataset).
3. Start llama-server with the profile's arguments on a free port, wait until it is ready.
4. Run ``profiles/evalplus_driver.py`` in EvalPlus's Python: greedy code generation against
   ``/v1`` (OpenAI-compatible), then EvalPlus's evaluation. A server that dies stops it.
5. Stop the server, read its log: every request's prompt and decode timings (llama-server's
   own clock) and the build that ran.
6. Store the raw results (EvalPlus's samples, raw outputs and eval results, the server log)
   and ``run.json`` (``BenchRun``) in ``results/<bench-profile>/<dataset>-<time>/``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from profiles.bench_data import display_names, system_prompts
from profiles.evalplus_env import EVALPLUS_VERSION, evalplus_python
from profiles.launch import load_profile, measurable_args
from profiles.models_conf import write_atomic
from profiles.server import LlamaServer, spawn
from profiles.server_log import parse_server_log_file, request_timings
from profiles.workspace import Workspace, is_bench_profile
from solver.errors import BadInput, OperationFailed

DATASETS = ("humaneval", "mbpp")
OVERRIDE_VARIABLES = {"humaneval": "HUMANEVAL_OVERRIDE_PATH", "mbpp": "MBPP_OVERRIDE_PATH"}
LOADERS = {"humaneval": "get_human_eval_plus", "mbpp": "get_mbpp_plus"}
DRIVER = Path(__file__).with_name("evalplus_driver.py")
MAX_TOKENS = 768  # EvalPlus's own max_new_tokens
PASS = "pass"


class BenchRun(BaseModel):
    """One EvalPlus run of one bench profile on one dataset, as ``run.json`` keeps it."""

    model_config = ConfigDict(frozen=True)

    profile: str
    display_name: str
    model: str
    dataset: str
    problems: int
    limit: int | None = Field(description="--limit: the first N problems; None: all")
    max_tokens: int = Field(default=MAX_TOKENS, description="most tokens per answer")
    dataset_source: str = Field(description="EvalPlus's own file, or the override's path")
    dataset_sha256: str | None = None
    started: dt.datetime
    finished: dt.datetime
    evalplus: str = EVALPLUS_VERSION
    llama_build: str | None = Field(description="the server log's 'build N (commit) ...'")
    base_pass: int
    plus_pass: int
    decode_tps: float | None = Field(description="generated tokens / decode seconds, all requests")
    prompt_tps: float | None = None
    samples: str = Field(description="EvalPlus's sanitized samples, relative to the run folder")
    eval_results: str

    @property
    def pass_at_1(self) -> float:
        return 100 * self.base_pass / self.problems if self.problems else 0.0

    @property
    def plus_pass_at_1(self) -> float:
        return 100 * self.plus_pass / self.problems if self.problems else 0.0


def _dataset_file(
    dataset: str, limit: int | None, folder: Path, python: Path
) -> tuple[Path | None, str]:
    """Step 2: the override file EvalPlus should read (None: its own) and its description."""
    source = os.environ.get(OVERRIDE_VARIABLES[dataset])
    if limit is None:
        return (Path(source), source) if source else (None, f"EvalPlus {dataset}+ (its own)")
    if source:
        text = Path(source).read_text(encoding="utf-8")
    else:
        loader = LOADERS[dataset]
        code = (
            f"import json; from evalplus.data import {loader} as load\n"
            "for task in load().values(): print(json.dumps(task))"
        )
        done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise OperationFailed(f"EvalPlus could not load {dataset}: {last}")
        text = done.stdout
    lines = [line for line in text.splitlines() if line.strip()][:limit]
    path = folder / f"{dataset}-first-{limit}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, f"first {len(lines)} problems of {source or f'EvalPlus {dataset}+'}"


def _run_folder(workspace: Workspace, profile_id: str, dataset: str, started: dt.datetime) -> Path:
    stamp = started.strftime("%Y%m%d-%H%M%S")
    folder = workspace.results / profile_id / f"{dataset}-{stamp}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def _driver_until_done(
    argv: list[str], env: dict[str, str], log: Path, server: LlamaServer, timeout_s: float
) -> None:
    """Step 4: run the driver; stop it when the server dies or the time is up."""
    child = spawn(argv, log, env=env)
    deadline = time.monotonic() + timeout_s
    try:
        while (status := child.exit_code()) is None:
            if server.has_exited():
                raise OperationFailed(f"llama-server died during the benchmark; see {log}")
            if time.monotonic() > deadline:
                raise OperationFailed(f"EvalPlus ran past {timeout_s:.0f} s; see {log}")
            time.sleep(0.5)
    finally:
        child.stop(grace_s=5)
    if status != 0:
        tail = child.log_text().strip().splitlines()[-3:]
        raise OperationFailed(f"EvalPlus failed (exit {status}): {' | '.join(tail)}; see {log}")


def run_bench(
    conf_path: Path,
    profile_id: str,
    *,
    dataset: str = "humaneval",
    limit: int | None = None,
    server: Path | str | None = None,
    timeout_s: float = 6 * 3600,
    max_tokens: int = MAX_TOKENS,
    progress: Callable[[str], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[BenchRun, Path]:
    """Steps 1-6; returns the run and its folder. ``progress`` hears each step, ``note``
    what the user should see in any case (EvalPlus's one-time install, minutes long)."""
    if not is_bench_profile(profile_id):
        raise BadInput(f"[{profile_id}] is not a bench profile (`fit bench-profile` makes one)")
    if dataset not in DATASETS:
        raise BadInput(f"--dataset must be one of {', '.join(DATASETS)}")
    workspace = Workspace.of(conf_path)
    launch = load_profile(conf_path, profile_id)
    name = display_names(workspace).get(profile_id, profile_id)
    python = evalplus_python(note or progress)
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    folder = _run_folder(workspace, profile_id, dataset, started)
    try:
        override, source = _dataset_file(dataset, limit, folder, python)
    except BaseException:
        shutil.rmtree(folder)  # nothing ran: no run to keep
        raise
    request = {
        "dataset": dataset, "model": profile_id, "root": str(folder / "evalplus"),
        "system_prompt": system_prompts(workspace).get(profile_id), "parallel": 1,
        "max_tokens": max_tokens,
    }  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "none")}
    if override is not None:
        env[OVERRIDE_VARIABLES[dataset]] = str(override)
    args, _ = measurable_args(launch.args)
    server_log = folder / "llama-server.log"
    with LlamaServer(
        launch.model, args, binary=server, log_path=server_log, progress=progress
    ) as llama:
        request["base_url"] = f"{llama.url}/v1"
        (folder / "request.json").write_text(json.dumps(request, indent=2, sort_keys=True))
        if progress is not None:
            progress(f"EvalPlus {dataset} against [{profile_id}] at {llama.url}")
        argv = [str(python), str(DRIVER), str(folder / "request.json")]
        _driver_until_done(argv, env, folder / "evalplus.log", llama, timeout_s)
    run = _bench_record(folder, profile_id, name, launch.model, dataset, limit, started)
    run = run.model_copy(
        update={
            "dataset_source": source,
            "dataset_sha256": _sha256(override),
            "max_tokens": max_tokens,
        }
    )
    write_atomic(folder / "run.json", run.model_dump_json(indent=2) + "\n", backup=False)
    return run, folder


def _sha256(path: Path | None) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None


def _bench_record(
    folder: Path, profile_id: str, name: str, model: Path, dataset: str, limit: int | None,
    started: dt.datetime,
) -> BenchRun:  # fmt: skip
    """Steps 5-6: the counts from EvalPlus's results, the speeds and build from the log."""
    results = sorted((folder / "evalplus" / dataset).glob("*_eval_results.json"))
    if not results:
        raise OperationFailed(f"EvalPlus wrote no evaluation results under {folder}")
    samples = results[0].with_name(results[0].name.replace("_eval_results.json", ".jsonl"))
    evaluated = json.loads(results[0].read_text())["eval"]
    first = [attempts[0] for attempts in evaluated.values()]
    log_path = folder / "llama-server.log"
    timings = request_timings(log_path.read_text(errors="replace"))
    return BenchRun(
        profile=profile_id, display_name=name, model=model.name, dataset=dataset,
        problems=len(first), limit=limit, dataset_source="", started=started,
        finished=dt.datetime.now(dt.UTC).replace(microsecond=0),
        llama_build=parse_server_log_file(log_path).build,
        base_pass=sum(r["base_status"] == PASS for r in first),
        plus_pass=sum(r["base_status"] == PASS and r["plus_status"] == PASS for r in first),
        decode_tps=_rate(timings["decode"]), prompt_tps=_rate(timings["prompt"]),
        samples=str(samples.relative_to(folder)), eval_results=str(results[0].relative_to(folder)),
    )  # fmt: skip


def _rate(total: tuple[float, int]) -> float | None:
    ms, tokens = total
    return tokens / (ms / 1000) if ms > 0 else None


def bench_text(run: BenchRun, folder: Path) -> str:
    speed = f"{run.decode_tps:.1f} t/s decode" if run.decode_tps else "no decode timing"
    return "\n".join(
        [
            f"[{run.profile}] {run.dataset}: {run.problems} problems ({run.dataset_source})",
            f"  pass@1 {run.pass_at_1:.1f}% base ({run.base_pass}/{run.problems}), "
            f"{run.plus_pass_at_1:.1f}% plus ({run.plus_pass}/{run.problems}); {speed}",
            f"  llama.cpp {run.llama_build or 'build unknown'}; EvalPlus {run.evalplus}",
            f"  raw results: {folder}",
        ]
    )
