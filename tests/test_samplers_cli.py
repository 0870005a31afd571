"""``fit samplers``: a card's samplers as flags, written into a profile's EXTRA_ARGS and into
docs/client-settings.md (the example workspace's files), every other byte kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from tests.fake_hub import FakeHub
from tests.test_card_samplers import GPT_OSS, NO_ADVICE, QWEN3

FIXTURES = Path(__file__).parent / "fixtures"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models.conf").write_bytes((FIXTURES / "models.conf").read_bytes())
    (tmp_path / "docs").mkdir()
    docs = tmp_path / "docs" / "client-settings.md"
    docs.write_bytes((FIXTURES / "client-settings.md").read_bytes())
    (tmp_path / "README_qwen3.md").write_text(QWEN3)
    (tmp_path / "README_gpt-oss.md").write_text(
        GPT_OSS.replace("temperature=1.0", "").replace("top_p=1.0", "")
    )
    (tmp_path / "README_tiny.md").write_text(NO_ADVICE)
    return tmp_path


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.split("\n"), after.split("\n")
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def test_show_flags_per_mode(workspace: Path) -> None:
    code, out, err = run("samplers", "README_qwen3.md", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["mode"] == "thinking"
    assert document["flags"] == [
        "--temp",
        "0.6",
        "--top-p",
        "0.95",
        "--top-k",
        "20",
        "--min-p",
        "0",
    ]
    code, out, _ = run("samplers", "README_qwen3.md", "--mode", "non-thinking")
    assert code == 0
    assert "flags (non-thinking mode): --temp 0.7 --top-p 0.8 --top-k 20 --min-p 0" in out
    assert "temperature 0.7, top_p 0.8, top_k 20, min_p 0    <- For non-thinking mode (" in out
    assert "presence_penalty: 0-2 (a range)" in out
    assert "prompt: Add /think or /no_think" in out


def test_write_updates_profile_and_docs_in_place(workspace: Path) -> None:
    conf_before = (workspace / "models.conf").read_text()
    docs_before = (workspace / "docs/client-settings.md").read_text()
    code, _out, err = run("samplers", "README_qwen3.md", "--profile", "qwen3-coder-30b", "--write")
    assert code == 0, err
    conf_after = (workspace / "models.conf").read_text()
    assert changed_lines(conf_before, conf_after) == [(
        "EXTRA_ARGS=-ts 22,18 -fa on -ctk q8_0 -ctv q8_0 --jinja --temp 0.7 --top-p 0.8 "
        "--top-k 20 --repeat-penalty 1.05",
        "EXTRA_ARGS=-ts 22,18 -fa on -ctk q8_0 -ctv q8_0 --jinja --temp 0.6 --top-p 0.95 "
        "--top-k 20 --repeat-penalty 1.05 --min-p 0",
    )]  # fmt: skip
    assert (workspace / "models.conf.bak").read_text() == conf_before
    docs_after = (workspace / "docs/client-settings.md").read_text()
    kept = docs_before.replace(
        "| qwen3-coder-30b | no | yes | no | 131072 |",
        "| qwen3-coder-30b | optional | yes | no | 131072 |",
    ).replace(
        "| qwen3-coder-30b | 0.7 | 0.8 | 20 | - | 1.05 |",
        "| qwen3-coder-30b | 0.6 | 0.95 | 20 | 0 | 1.05 |",
    )
    assert docs_after.startswith(kept)
    section = docs_after[len(kept) :]
    assert section.startswith(
        "\n## qwen3-coder-30b\n\nSamplers from the model card, thinking mode (in EXTRA_ARGS): "
        "temperature 0.6, top_p 0.95, top_k 20, min_p 0.\n"
        "For non-thinking mode: temperature 0.7, top_p 0.8, top_k 20, min_p 0.\n"
        "presence_penalty: between 0 and 2 (no one value).\n"
    )
    assert "> For non-thinking mode (enable_thinking=False), we suggest using" in section
    # Again: same bytes (the section is replaced, not added twice).
    code, _, _ = run("samplers", "README_qwen3.md", "--profile", "qwen3-coder-30b", "--write")
    assert code == 0
    assert (workspace / "docs/client-settings.md").read_text() == docs_after
    assert (workspace / "models.conf").read_text() == conf_after


def test_write_family_defaults_for_a_new_docs_row(workspace: Path) -> None:
    docs = workspace / "docs/client-settings.md"
    text = docs.read_text().replace("| gpt-oss-120b | 1.0 | 1.0 | 0 | 0.0 | - |\n", "")
    text = text[: text.index("## gpt-oss-120b")]
    docs.write_text(text)
    code, out, err = run("samplers", "README_gpt-oss.md", "--profile", "gpt-oss-120b", "--write")
    assert code == 0, err
    assert "samplers from family defaults: gpt-oss (openai/gpt-oss-120b model card" in out
    after = docs.read_text()
    rows = [line for line in after.split("\n") if line.startswith("| g")]
    assert rows == [
        "| glm-flash-q8 | optional | yes | no | 65536 |",
        "| gpt-oss-120b | always (levels) | yes | no | 131072 |",
        "| glm-flash-q8 | 0.7 | 1.0 | - | 0.01 | - |",
        "| gpt-oss-120b | 1 | 1 | - | - | - |",  # the new row, in profile order
    ]
    assert after.endswith(
        "## gpt-oss-120b\n\nSamplers from family defaults: gpt-oss (openai/gpt-oss-120b model "
        "card, 'Recommended Sampling Parameters' (2025-08)), all modes (in EXTRA_ARGS): "
        "temperature 1, top_p 1.\nSet the reasoning level in the system prompt: "
        "`Reasoning: low|medium|high`.\n"
    )


def test_card_without_advice(workspace: Path) -> None:
    conf_before = (workspace / "models.conf").read_text()
    code, out, _err = run(
        "samplers", "README_tiny.md", "--profile", "qwen3-32b-q8", "--write", "--json"
    )
    assert code == 1
    assert json.loads(out)["error"]["message"] == (
        "README_tiny.md: the card gives no sampler values, and fit has no defaults for this "
        "model's family; set --temp and friends in EXTRA_ARGS yourself"
    )
    assert (workspace / "models.conf").read_text() == conf_before
    assert not (workspace / "models.conf.bak").exists()


def test_bad_requests(workspace: Path) -> None:
    code, _, err = run("samplers", "README_qwen3.md", "--write")
    assert code == 2 and "--write needs --profile ID" in err
    code, _, err = run("samplers", "README_qwen3.md", "--profile", "nope", "--write")
    assert code == 2 and "no profile [nope]" in err
    # A docs file fit may not write: refused before models.conf is touched.
    conf_before = (workspace / "models.conf").read_text()
    (workspace / "docs/client-settings.md").chmod(0o444)
    code, _, err = run("samplers", "README_qwen3.md", "--profile", "qwen3-32b-q8", "--write")
    assert code == 2 and "client-settings.md: read-only" in err
    assert (workspace / "models.conf").read_text() == conf_before
    code, _, err = run("samplers", "missing.md")
    assert code == 2 and "missing.md: no such card file" in err
    (workspace / "bad.md").write_text("---\nlicense: [mit\n---\nbody\n")
    code, _, err = run("samplers", "bad.md")
    assert code == 2 and "the front matter is not valid YAML" in err


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield server


def test_samplers_from_the_hub(hub: FakeHub, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(QWEN3)
    hub.add("Qwen/Qwen3-32B", "README.md", tmp_path / "README.md")
    code, out, err = run("samplers", "Qwen/Qwen3-32B", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["source"] == "hf://Qwen/Qwen3-32B/README.md"
    assert document["flags"][:2] == ["--temp", "0.6"]
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    hub.add("someone/No-Card", "model.gguf", tmp_path / "model.gguf")
    code, _, err = run("samplers", "someone/No-Card")
    assert code == 2 and "the repository has no README.md (model card)" in err
