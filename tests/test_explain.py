"""The infeasibility explanation: every suggestion is one a solve confirms (issue 15)."""

from __future__ import annotations

from solver.gguf.catalogue import load_catalogue_entry
from solver.hardware.scenario import load_hardware
from solver.placement.setting import SolveRequest, resolve_setting
from solver.placement.solve import CONTEXT_STEP, SCENARIO_CPU, solve, solve_setting
from solver.quantities import GIB


def fits(model: str, request: SolveRequest, context: int) -> bool:
    """One direct solve of ``model`` at ``context`` with the request's first KV type."""
    inventory, hardware = load_catalogue_entry(model), load_hardware("reference")
    kv = request.kv_types[0]
    setting = resolve_setting(inventory, hardware, request, context, kv)
    return solve_setting(inventory, hardware, request, setting, SCENARIO_CPU).feasible


def suggested_context(suggestions: tuple[str, ...]) -> int:
    (line,) = [s for s in suggestions if s.startswith("a context of ")]
    return int(line.split()[3])


def test_an_absurd_context_suggests_the_longest_trained_context_that_fits() -> None:
    # The case: --ctx 99999999 suggested 4096 tokens where 131072 fits, and a quant
    # of at most 0.4 GiB, although the weights were never the problem.
    request = SolveRequest(contexts=(99_999_999,))
    inventory = load_catalogue_entry("gpt-oss-20b")
    report = solve(inventory, load_hardware("reference"), request)
    assert not report.feasible and report.shortfall is not None
    suggestions = report.shortfall.suggestions
    context = suggested_context(suggestions)
    assert context == inventory.context_length == 131072  # capped at the training context
    assert fits("gpt-oss-20b", request, context)
    assert not any("quant" in s for s in suggestions), suggestions


def test_the_suggested_context_is_the_largest_that_fits() -> None:
    # 34 GiB of RAM: the 70B's f16 KV cache at 131072 tokens does not fit beside its weights,
    # so the answer lies strictly between 1024 and the training context.
    request = SolveRequest(contexts=(131072,), ram_reserve_bytes=30 * GIB, time_limit_s=1.0)
    report = solve(load_catalogue_entry("llama-3.3-70b"), load_hardware("reference"), request)
    assert report.shortfall is not None
    context = suggested_context(report.shortfall.suggestions)
    assert 1024 < context < 131072 and context % CONTEXT_STEP == 0
    assert fits("llama-3.3-70b", request, context)
    assert not fits("llama-3.3-70b", request, context + CONTEXT_STEP)


def test_weights_too_big_only_a_smaller_quant_helps() -> None:
    request = SolveRequest(contexts=(8192,))
    inventory = load_catalogue_entry("qwen3-235b-a22b:Q8_0")
    report = solve(inventory, load_hardware("reference"), request)
    assert report.shortfall is not None
    suggestions = report.shortfall.suggestions
    assert not any(s.startswith(("a context", "a q8_0")) for s in suggestions), suggestions
    (catalogue,) = [s for s in suggestions if s.startswith("qwen3-235b-a22b:")]
    smaller = catalogue.split()[0]
    assert fits(smaller, request, 8192)  # the suggested quant, solved again
    (size,) = [s for s in suggestions if s.startswith("a quant of at most")]
    room = float(size.split()[5]) * GIB
    assert load_catalogue_entry(smaller).total_bytes <= room < inventory.total_bytes
