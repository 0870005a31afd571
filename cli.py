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


@cli.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--tensors", "show_tensors", is_flag=True, help="Also list every tensor.")
def inspect(model: str, as_json: bool, show_tensors: bool) -> None:
    """Show a model's architecture, hyperparameters and tensor sizes, from its header only.

    MODEL is a local .gguf (any part of a split set brings in all parts), an
    hf://OWNER/REPO/FILE.gguf[@REVISION] URL (only the header is downloaded), or a
    catalogue name.

    \b
    Examples:
        fit inspect ~/models/gemma-3-270m-q4_k_m.gguf
        fit inspect hf://unsloth/gpt-oss-20b-GGUF/gpt-oss-20b-Q4_K_M.gguf --json
    """
    from solver.inventory_report import inventory_json, role_table, summary_lines, tensor_table
    from solver.sources import load_inventory

    inventory = load_inventory(model)
    if as_json:
        emit_json(inventory_json(inventory))
        return
    lines = [*summary_lines(inventory), "", *role_table(inventory)]
    if show_tensors:
        lines += ["", *tensor_table(inventory)]
    click.echo("\n".join(lines))


# --- hardware ---------------------------------------------------------------------------


# --- llama (build and locate llama.cpp) -------------------------------------------------


# --- memory -----------------------------------------------------------------------------


# --- solve / whatif ---------------------------------------------------------------------


# --- start / test / calibrate / tune ----------------------------------------------------


def main() -> None:
    cli(prog_name="fit")


if __name__ == "__main__":
    sys.exit(main())
