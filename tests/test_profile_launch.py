"""`fit start`: a profile becomes start.sh's exact command, run in the foreground.

The launched program here is a small script standing in for llama-server (the real server
runs in tests/test_measure_llama.py): it records its argv and the signals it receives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from profiles.launch import load_profile
from profiles.models_conf import ModelsConf
from solver.errors import BadInput
from solver.llama.arg_edit import last_value, option_values, without_options
from solver.tune.tuner import TuneSettings, tuned_args
from tests.conftest import reaped

CONF = textwrap.dedent(
    r"""
    # a workspace
    # NOT YET TESTED
    [regex]
    NAME=Regex profile
    MODEL=models/m.gguf
    CTX_SIZE=4096
    N_GPU_LAYERS=99
    FIT=off
    EXTRA_ARGS=-ts 3,2 -fa on -ot "blk\.([0-9]|1[0-9])\.ffn_.*_exps\.=CPU" --temp 0.7 --host 0.0.0.0

    [bare]
    MODEL=/abs/model.gguf
    EXTRA_ARGS=

    [nomodel]
    NAME=x
    """
).lstrip()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    conf = tmp_path / "ws" / "models.conf"
    conf.parent.mkdir()
    conf.write_text(CONF)
    return conf


def test_profile_becomes_start_sh_command(workspace: Path) -> None:
    launch = load_profile(workspace, "regex")
    assert launch.model == workspace.parent / "models" / "m.gguf"
    assert list(launch.args) == [
        "-c", "4096", "-ngl", "99", "--fit", "off",
        "-ts", "3,2", "-fa", "on", "-ot", r"blk\.([0-9]|1[0-9])\.ffn_.*_exps\.=CPU",
        "--temp", "0.7", "--host", "0.0.0.0",
    ]  # fmt: skip
    # keys that are absent leave their flag out instead of passing an empty value
    assert load_profile(workspace, "bare").args == ()
    with pytest.raises(BadInput, match="no MODEL"):
        load_profile(workspace, "nomodel")
    with pytest.raises(BadInput, match=r"no profile \[missing\]"):
        load_profile(workspace, "missing")


def test_dry_run_prints_the_command(workspace: Path) -> None:
    result = CliRunner().invoke(
        cli, ["start", "regex", "--conf", str(workspace), "--server", "/bin/true", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    model = workspace.parent / "models" / "m.gguf"
    assert result.output.strip() == (
        f"/bin/true -m {model} -c 4096 -ngl 99 --fit off -ts 3,2 -fa on "
        r'-ot "blk\.([0-9]|1[0-9])\.ffn_.*_exps\.=CPU" --temp 0.7 --host 0.0.0.0'
    )
    as_json = CliRunner().invoke(
        cli, ["start", "bare", "--conf", str(workspace), "--server", "/bin/true", "--dry-run",
              "--json"],
    )  # fmt: skip
    assert json.loads(as_json.output) == ["/bin/true", "-m", "/abs/model.gguf"]


_FAKE_SERVER = textwrap.dedent(
    """\
    #!{python}
    import json, signal, sys, time
    out = sys.argv[-1]
    def got(signum, frame):
        with open(out, "a") as f:
            f.write(f"signal {{signum}}\\n")
        sys.exit(7)
    signal.signal(signal.SIGTERM, got)
    signal.signal(signal.SIGINT, got)
    with open(out, "w") as f:
        f.write(json.dumps(sys.argv[1:]) + "\\n")
    if "--exit-now" in sys.argv:
        sys.exit(3)
    time.sleep(60)
    """
)


@pytest.fixture
def fake_server(tmp_path: Path) -> Path:
    script = tmp_path / "fake-llama-server"
    script.write_text(_FAKE_SERVER.format(python=sys.executable))
    script.chmod(0o755)
    return script


def _conf_with_extra(workspace: Path, extra: str) -> None:
    conf = ModelsConf.read(workspace)
    conf.set_value("bare", "EXTRA_ARGS", extra)
    conf.write(workspace, backup=False)


def test_start_runs_the_command_and_exits_with_its_status(
    workspace: Path, fake_server: Path, tmp_path: Path
) -> None:
    record = tmp_path / "argv.txt"
    _conf_with_extra(workspace, f"--exit-now {record}")
    result = CliRunner().invoke(
        cli, ["start", "bare", "--conf", str(workspace), "--server", str(fake_server)]
    )
    assert result.exit_code == 3
    argv = json.loads(record.read_text().splitlines()[0])
    assert argv == ["-m", "/abs/model.gguf", "--exit-now", str(record)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_start_forwards_signals_once(
    workspace: Path, fake_server: Path, tmp_path: Path, signum: int
) -> None:
    record = tmp_path / "argv.txt"
    _conf_with_extra(workspace, str(record))
    argv = [sys.executable, "-m", "cli", "start", "bare", "--conf", str(workspace),
            "--server", str(fake_server)]  # fmt: skip
    repo = Path(__file__).parent.parent
    with reaped(subprocess.Popen(argv, cwd=repo, stdout=subprocess.DEVNULL)) as fit:
        deadline = time.monotonic() + 30
        while not record.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert record.exists(), "the command did not start"
        os.kill(fit.pid, signum)
        status = fit.wait(timeout=30)
    assert record.read_text().splitlines()[1:] == [f"signal {int(signum)}"]
    assert status == 7  # the child's own exit status


def test_option_editing_knows_every_spelling() -> None:
    args = ["-b", "512", "--batch_size", "1024", "--jinja", "-ub", "64", "--mystery", "-t", "4"]
    assert option_values(args, "--batch-size") == ["512", "1024"]
    assert last_value(args, "--ubatch-size") == "64"
    assert without_options(args, {"--batch-size", "--threads"}) == [
        "--jinja", "-ub", "64", "--mystery",
    ]  # fmt: skip


def test_tuned_arguments_replace_only_their_options() -> None:
    args = ["-c", "2048", "-ngl", "99", "--rpc", "h:1,h:2", "-ot", "x=CPU", "-b", "64", "-t", "8"]
    settings = TuneSettings(n_batch=256, n_ubatch=32, threads=2, n_gpu_layers=7,
                            tensor_split=(1.0, 0.25))  # fmt: skip
    assert tuned_args(args, settings) == [
        "-ngl", "7", "-c", "2048", "--rpc", "h:1,h:2", "-ot", "x=CPU",
        "-b", "256", "-ub", "32", "-t", "2", "-ts", "1,0.25",
    ]  # fmt: skip
    untouched = TuneSettings(n_batch=256, n_ubatch=32, threads=2)
    assert tuned_args(args, untouched)[:8] == [
        "-c", "2048", "-ngl", "99", "--rpc", "h:1,h:2", "-ot", "x=CPU",
    ]  # fmt: skip
