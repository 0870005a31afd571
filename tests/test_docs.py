"""fit docs check|sync on a copy of the example workspace: tables against models.conf."""

from __future__ import annotations

from pathlib import Path

from tests.workspace_support import example_workspace, invoke, json_of


def _docs(conf: Path, *args: str):
    return invoke("docs", *args, "--conf", str(conf))


def test_example_as_shipped_disagrees_where_it_lacks_rows_and_sections(tmp_path: Path) -> None:
    conf = example_workspace(tmp_path)
    result = _docs(conf, "check", "--json")
    assert result.exit_code == 1, result.output
    found = {(d["file"], d["profile"], d["message"]) for d in json_of(result)["disagreements"]}
    assert found == {
        ("benchmarks/evalplus/README.md", "bench-glm-flash-q8", "no row"),
        ("docs/client-settings.md", "glm-flash-q8", "no '## glm-flash-q8' section"),
        ("docs/client-settings.md", "qwen3-coder-30b", "no '## qwen3-coder-30b' section"),
        ("docs/client-settings.md", "qwen3-32b-q8", "no '## qwen3-32b-q8' section"),
    }


def test_sync_keeps_prose_and_tables_then_check_agrees(tmp_path: Path) -> None:
    conf = example_workspace(tmp_path)
    docs = tmp_path / "docs" / "client-settings.md"
    before = docs.read_text()
    assert _docs(conf, "sync").exit_code == 0
    after = docs.read_text()
    # every line of the original is still there, in order (markers and sections are added)
    kept = iter(after.splitlines())
    assert all(any(line == other for other in kept) for line in before.splitlines())
    assert "<!-- fit:samplers -->" in after and "## qwen3-32b-q8" in after
    assert (tmp_path / "benchmarks/evalplus/README.md").exists()
    result = _docs(conf, "check")
    assert result.exit_code == 0, result.output
    assert _docs(conf, "sync").output.strip() == "docs already in sync"
    assert docs.read_text() == after


def test_a_cell_edited_by_hand_is_named_and_sync_restores_it(tmp_path: Path) -> None:
    conf = example_workspace(tmp_path)
    docs = tmp_path / "docs" / "client-settings.md"
    _docs(conf, "sync")
    synced = docs.read_text()
    edited = synced.replace("| qwen3-32b-q8 | 0.6 |", "| qwen3-32b-q8 | 0.9 |")
    # a capability only the card tells is the user's: changing it is no disagreement
    edited = edited.replace("| qwen3-coder-30b | no |", "| qwen3-coder-30b | never |")
    docs.write_text(edited)
    user_cell = synced.replace("| qwen3-coder-30b | no |", "| qwen3-coder-30b | never |")
    result = _docs(conf, "check")
    assert result.exit_code == 1
    assert result.stdout.strip() == (
        "docs/client-settings.md: Sampler table: [qwen3-32b-q8] temp is '0.9', "
        "models.conf says '0.6'"
    )
    assert "1 disagreement(s) in the docs" in result.stderr
    _docs(conf, "sync")
    assert docs.read_text() == user_cell


def test_a_row_without_a_profile_is_named(tmp_path: Path) -> None:
    conf = example_workspace(tmp_path)
    _docs(conf, "sync")
    docs = tmp_path / "docs" / "client-settings.md"
    row = "| old-model | 0.7 | - | - | - | - |\n<!-- /fit:samplers -->"
    docs.write_text(docs.read_text().replace("<!-- /fit:samplers -->", row))
    result = _docs(conf, "check")
    assert result.exit_code == 1
    assert "Sampler table: [old-model] row names no profile in models.conf" in result.stdout


README = """# My rig

Prose about the rig stays as written.

## Models

| Section ID | Model | Type | Speed | Context | Best for |
|------------|-------|------|-------|---------|----------|
| `glm-flash-q8` | GLM-4.7 Flash Q8_0 | MoE | 112 t/s | 64K | Fast tasks |
| `gpt-oss-120b` | GPT-OSS 120B MXFP4 | MoE | 31 t/s | 128K | Reasoning |
| `qwen3-coder-30b` | Qwen3-Coder 30B-A3B UD-Q6_K_XL | MoE | 128 t/s | 128K | Coding |
| `qwen3-32b-q8` | Qwen3 32B Q8_0 | Dense | 14 t/s | 32K | Thinking |

More prose.
"""


def test_the_readme_models_table_where_the_workspace_has_one(tmp_path: Path) -> None:
    conf = example_workspace(tmp_path)
    _docs(conf, "sync")
    readme = tmp_path / "README.md"
    assert not readme.exists()  # the user's file: fit never makes it
    readme.write_text(README.replace("| 31 t/s |", "| 35 t/s |"))
    result = _docs(conf, "check")
    assert result.exit_code == 1
    assert result.stdout.strip() == (
        "README.md: Models: [gpt-oss-120b] Speed is '35 t/s', models.conf says '31 t/s'"
    )
    assert _docs(conf, "sync").exit_code == 0
    synced = readme.read_text()
    assert "| `gpt-oss-120b` | GPT-OSS 120B MXFP4 | MoE | 31 t/s | 128K | Reasoning |" in synced
    assert synced.startswith("# My rig\n\nProse about the rig stays as written.\n")
    assert synced.endswith("\nMore prose.\n")
    assert _docs(conf, "check").exit_code == 0
