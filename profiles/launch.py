"""A ``models.conf`` profile as the llama-server command ``start.sh`` runs, and running it.

``start.sh`` runs ``llama-server -m $MODEL -c $CTX_SIZE -ngl $N_GPU_LAYERS --fit $FIT
$EXTRA_ARGS``. fit builds the same list without a shell: EXTRA_ARGS is split as a POSIX shell
would (``profiles.models_conf.split_args``), a key that is missing or empty leaves its flag
out (the shell would pass the flag without a value, which llama-server rejects), and a
relative MODEL path is taken from the folder of the conf file, the workspace.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from profiles.llama_build import SERVER_BINARY, find_llama_server
from profiles.models_conf import ModelsConf, Profile, split_args
from profiles.server import die_with_parent
from solver.errors import BadInput, OperationFailed
from solver.llama.arg_edit import without_options
from solver.text_table import terminal_safe

# profile key -> the llama-server flag start.sh puts before its value
KEY_FLAGS: tuple[tuple[str, str], ...] = (
    ("CTX_SIZE", "-c"),
    ("N_GPU_LAYERS", "-ngl"),
    ("FIT", "--fit"),
)
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class ProfileLaunch(BaseModel):
    """One profile resolved into a model file and llama-server arguments."""

    model_config = ConfigDict(frozen=True)

    profile_id: str
    conf_path: Path
    model: Path = Field(description="MODEL, resolved against the conf file's folder")
    args: tuple[str, ...] = Field(description="everything after -m MODEL, in start.sh's order")

    @property
    def workspace(self) -> Path:
        return self.conf_path.parent

    def argv(self, server: Path | str) -> list[str]:
        return [str(server), "-m", str(self.model), *self.args]


def profile_launch(conf: ModelsConf, conf_path: Path, profile_id: str) -> ProfileLaunch:
    """The command of ``[profile_id]``; a profile without MODEL is bad input."""
    profile = conf.profile(profile_id)
    model = (profile.get("MODEL") or "").strip()
    if not model:
        raise BadInput(f"{conf_path}: profile [{profile_id}] has no MODEL")
    model_path = Path(model).expanduser()
    if not model_path.is_absolute():
        model_path = conf_path.resolve().parent / model_path
    return ProfileLaunch(
        profile_id=profile_id,
        conf_path=conf_path,
        model=model_path,
        args=tuple(profile_args(profile)),
    )


def profile_args(profile: Profile) -> list[str]:
    """``-c CTX_SIZE -ngl N_GPU_LAYERS --fit FIT EXTRA_ARGS`` of a profile."""
    args = []
    for key, flag in KEY_FLAGS:
        value = (profile.get(key) or "").strip()
        if key == "FIT" and value not in ("", "on", "off"):
            # llama-server's --fit takes on|off; anything else (say, a stray escape sequence)
            # is refused here rather than printed or passed on
            raise BadInput(f"[{profile.id}] FIT={terminal_safe(value)}: must be on or off")
        if value:
            args += [flag, value]
    return args + split_args(profile.get("EXTRA_ARGS") or "")


def load_profile(conf_path: Path, profile_id: str) -> ProfileLaunch:
    return profile_launch(ModelsConf.read(conf_path), conf_path, profile_id)


def measurable_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Arguments for a measuring launch: fit picks host and port itself (``LlamaServer``);
    the profile's own ``--host``/``--port`` are dropped and reported."""
    kept = without_options(args, ("--host", "--port"))
    notes = []
    if len(kept) != len(args):
        notes.append("the profile's --host/--port were left out: fit listens on 127.0.0.1 itself")
    return kept, notes


def resolve_server(explicit: Path | str | None) -> Path:
    """``--server PATH``, ``$LLAMA_SERVER``, fit's cached build, or PATH."""
    return find_llama_server(explicit).path


def server_to_show(explicit: Path | str | None) -> tuple[str, str | None]:
    """The llama-server a start would run, for a command that is only printed: its path and
    no note, or, where none can run, what the command should name and a note saying why.

    Never needs a binary: an explicit ``--server`` or ``$LLAMA_SERVER`` that is not an
    executable is shown as given; without any, the plain name ``llama-server``."""
    try:
        return str(resolve_server(explicit)), None
    except OperationFailed as error:
        named = explicit or os.environ.get("LLAMA_SERVER")
        shown = str(Path(named).expanduser()) if named else SERVER_BINARY
        return shown, f"{error}; the command names {shown}, which `fit start` cannot run yet"


def run_foreground(argv: Sequence[str]) -> int:
    """Run ``argv`` as ``start.sh`` would, passing our signals on; its exit status.

    The child gets its own process group, so a terminal's Ctrl-C reaches fit alone and is
    passed on exactly once (a second SIGINT makes llama-server quit without cleaning up); it
    dies with fit if fit is killed outright. fit waits until the child has exited.
    """
    try:
        child = subprocess.Popen(
            list(argv), process_group=0, preexec_fn=die_with_parent(os.getpid())
        )
    except OSError as error:
        raise OperationFailed(f"cannot start {argv[0]}: {error}") from None

    def forward(signum: int, _frame: object) -> None:
        with suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        status = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    # a child killed by a signal exits like a shell reports it: 128 + signal number
    return 128 - status if status < 0 else status


def workspace_file(conf_path: Path, *parts: str) -> Path:
    """A path inside the workspace (the folder of the conf file)."""
    return conf_path.resolve().parent.joinpath(*parts)
