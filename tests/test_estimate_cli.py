"""``fit estimate``: memory, budget verdict and speeds with their corpus interval for any
llama-server command line; bad arguments are one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from solver.cost.fidelity import corpus_intervals


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["estimate", *args])
    return result.exit_code, result.output


def test_catalogue_model_json_has_memory_verdict_and_speeds_with_intervals() -> None:
    code, out = _run("gpt-oss-20b", "--json", "--", "-c", "16384", "-ngl", "99", "--fit", "off")
    assert code == 0, out
    document = json.loads(out)
    assert set(document["devices"]) >= {"CPU", "CUDA0"}
    assert document["verdict"]["fits"] is True
    estimate = document["estimate"]
    for speed in ("decode", "prefill"):
        value, (low, high) = estimate[f"{speed}_tps"], estimate[f"{speed}_interval"]
        assert 0 < low <= value <= high
    assert estimate["interval"]["decode_rows"] == corpus_intervals().decode.rows
    assert document["depth"] == 0


def test_depth_slows_decode_and_is_checked_against_the_context() -> None:
    args = ("qwen3-30b-a3b:Q4_K_M", "--json", "--", "-c", "32768", "-ngl", "99", "--fit", "off")
    code, shallow = _run(*args)
    assert code == 0, shallow
    code, deep = _run("--depth", "30000", *args)
    assert code == 0, deep
    assert (
        json.loads(deep)["estimate"]["decode_tps"] < json.loads(shallow)["estimate"]["decode_tps"]
    )
    code, out = _run("qwen3-30b-a3b:Q4_K_M", "--depth", "40000", "--", "-c", "32768")
    assert code == 2
    assert "--depth 40000 is not below the context" in out
    assert len(out.strip().splitlines()) == 1


def test_hybrid_offload_is_slower_and_text_says_what_the_interval_covers() -> None:
    base = ("qwen3-30b-a3b:Q4_K_M", "--json", "--", "-c", "8192", "-ngl", "99", "--fit", "off")
    code, gpu = _run(*base)
    assert code == 0, gpu
    code, hybrid = _run(*base, "--n-cpu-moe", "24")
    assert code == 0, hybrid
    assert json.loads(hybrid)["estimate"]["decode_tps"] < json.loads(gpu)["estimate"]["decode_tps"]
    code, text = _run("qwen3-30b-a3b:Q4_K_M", "--", "-c", "8192", "-ngl", "99", "--n-cpu-moe", "24")
    assert code == 0, text
    assert "decode " in text and "p10-p90" in text
    assert "public llama.cpp measurements" in text and "hybrid" in text
    assert "verdict:" in text


def test_real_gemma_file(gemma_gguf: Path) -> None:
    code, out = _run(str(gemma_gguf), "--cpu", "none", "--", "-c", "4096", "-ngl", "99")
    assert code == 0, out
    for word in ("CUDA0", "kv/swa", "decode", "prefill", "verdict: fits"):
        assert word in out
    code, out = _run(str(gemma_gguf), "--json", "--depth", "2048", "--", "-c", "4096")
    assert code == 0, out
    assert json.loads(out)["estimate"]["decode_tps"] > 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("gpt-oss-20b", "--", "--no-such-flag"), "--no-such-flag"),
        (("gpt-oss-20b", "--", "-ngl", "lots"), "-ngl"),
        (("no-such-model:Q4_K_M", "--", "-c", "4096"), "no-such-model"),
        (("gpt-oss-20b", "--hardware", "no-such-rig", "--", "-c", "4096"), "no-such-rig"),
        (("gpt-oss-20b", "--depth", "-5", "--", "-c", "4096"), "--depth"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: tuple[str, ...], says: str) -> None:
    code, out = _run(*args)
    assert code == 2, out
    assert says in out
    assert "Traceback" not in out


def test_bad_arguments_with_json_are_one_json_document() -> None:
    code, out = _run("gpt-oss-20b", "--json", "--", "--no-such-flag")
    assert code == 2
    document = json.loads(out)
    assert "--no-such-flag" in json.dumps(document)


def test_cpu_only_launch_says_the_interval_does_not_cover_it() -> None:
    code, out = _run("gpt-oss-20b", "--", "-c", "8192", "-ngl", "0", "--fit", "off")
    assert code == 0, out
    assert "the corpus has no CPU-only measurements" in out
