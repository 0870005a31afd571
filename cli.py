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


# --- memory -----------------------------------------------------------------------------


# --- solve / whatif ---------------------------------------------------------------------


# --- start / test / calibrate / tune ----------------------------------------------------


def main() -> None:
    cli(prog_name="fit")


if __name__ == "__main__":
    sys.exit(main())
