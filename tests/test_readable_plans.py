"""Readable, deterministic plans: among the plans within ``--tolerance`` of the optimum, the one
with the fewest ``-ot`` rules and layer ranges (or ``--n-cpu-moe``), the same every run."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from solver.cost.model import Objective
from solver.gguf.sources import load_inventory
from solver.hardware.scenario import load_hardware
from solver.llama.args import parse_llama_args
from solver.placement.cpsat import Choice, SolveStatus, fits, plan_seconds, solve_placement
from solver.placement.setting import SolveRequest, resolve_setting
from solver.placement.solve import (
    SCENARIO_CPU,
    check_round_trip,
    launch_args,
    plan_report,
    rule_scope,
    solve,
)
from solver.plan.plan import Plan
from solver.plan.render import (
    RuleScope,
    n_cpu_moe,
    override_rules,
    placement_args,
    readability,
    rule_ranges,
)
from solver.plan.units import Unit
from solver.quantities import CPU
from tests.test_placement import random_problem

README_EXAMPLES = (
    ("gpt-oss-120b", "--hardware", "reference", "--ctx", "32768"),
    ("gpt-oss-120b", "--ctx", "32768", "--baselines"),
    ("qwen3-30b-a3b:Q8_0", "--hardware", "5090-4090", "--kv", "f16,q8_0"),
)


def solve_json(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["solve", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize("example", README_EXAMPLES, ids=lambda e: " ".join(e))
def test_the_readme_examples_print_the_same_plan_five_times(example: tuple[str, ...]) -> None:
    outputs = set()
    for _ in range(5):
        document = solve_json(*example)  # the default worker count
        del document["solve_seconds"]
        outputs.add(json.dumps(document, sort_keys=True))
    assert len(outputs) == 1


def test_gpt_oss_120b_at_32k_on_the_reference_rig_has_contiguous_expert_rules() -> None:
    document = solve_json("gpt-oss-120b", "--hardware", "reference", "--ctx", "32768")
    args = document["args"]
    config = parse_llama_args(args, gpu_buffers=["CUDA0", "CUDA1"])
    expert_rules = [rule for rule in config.overrides if "exps" in rule.pattern]
    assert expert_rules, args  # 59 GiB of weights on 39 GiB of VRAM: some experts move
    by_target: dict[str, set[int]] = {}
    for rule in expert_rules:
        layers = {il for il in range(36) if re.search(rule.pattern, f"blk.{il}.ffn_up_exps.")}
        by_target.setdefault(rule.buffer_type, set()).update(layers)
    for target, layers in by_target.items():
        assert layers == set(range(min(layers), max(layers) + 1)), (target, sorted(layers))
    ot = args[args.index("-ot") + 1].split(",") if "-ot" in args else []
    assert len([rule for rule in ot if "exps" in rule]) + ("--n-cpu-moe" in args) == len(
        by_target
    )  # one rule (or --n-cpu-moe) per target, each one range
    readable = document["readability"]
    assert readable["choice"] == "readable" and readable["slower"] <= 0.005


def test_tolerance_is_an_option_and_the_output_says_what_it_cost() -> None:
    help_text = CliRunner().invoke(cli, ["solve", "--help"]).output
    assert "--tolerance" in help_text and "0.5" in help_text
    exact = solve_json("gpt-oss-120b", "--ctx", "32768", "--tolerance", "0")
    assert exact["readability"]["tolerance"] == 0
    assert exact["readability"]["slower"] < 1e-5  # the model's rounding only
    assert exact["readability"]["choice"] in ("readable", "optimum")
    text = CliRunner().invoke(cli, ["solve", "gpt-oss-120b", "--ctx", "32768"]).output
    assert re.search(r"readable plan: (as fast as|[0-9.]+% slower than) the optimum", text)


# --- the solver --------------------------------------------------------------------------------


def scope_of(problem) -> RuleScope:
    table = problem.table
    absent = {
        unit: frozenset(np.flatnonzero(table.stored[:, i] == 0).tolist())
        for i, unit in enumerate(table.units)
    }
    return RuleScope(absent=absent, n_cpu_moe=True)


@pytest.mark.parametrize("seed", range(6))
def test_a_readable_plan_fits_keeps_the_tolerance_and_its_readability_is_the_models(
    seed: int,
) -> None:
    rng = random.Random(300 + seed)
    problem = random_problem(rng, n_layers=6, objective=Objective.DECODE)
    scope = scope_of(problem)
    result = solve_placement(problem, time_limit_s=20, tolerance=0.02, scope=scope)
    if result.status is SolveStatus.INFEASIBLE:
        return
    assert result.status is SolveStatus.OPTIMAL and result.plan is not None
    assert fits(result.plan, problem)
    overhead = problem.tables.token_overhead
    optimum = result.optimum_seconds
    assert result.objective_seconds + overhead <= (optimum + overhead) * 1.02 * (1 + 1e-6)
    assert result.choice in (Choice.READABLE, Choice.OPTIMUM)
    assert result.readability == readability(result.plan, scope)
    again = solve_placement(problem, time_limit_s=20, tolerance=0.02, scope=scope, workers=3)
    assert again.plan == result.plan


def test_the_plan_does_not_depend_on_the_worker_count() -> None:
    inventory = load_inventory("gpt-oss-120b")
    hardware = load_hardware("reference")
    reports = [
        solve(inventory, hardware, SolveRequest(contexts=(32768,), workers=workers))
        for workers in (1, 2, 4)
    ]
    assert reports[0].readability is not None
    assert reports[0].readability.choice == Choice.READABLE
    assert all(r.args == reports[0].args and r.plan == reports[0].plan for r in reports)


# --- rendering and reading back ------------------------------------------------------------


def experts_plan(n_layers: int, on_cpu: list[int], gpus=("CUDA0",), first_gpu_layer=0) -> Plan:
    moved = tuple(CPU if il in on_cpu and il >= first_gpu_layer else None for il in range(n_layers))
    return Plan(
        gpus=gpus,
        n_layers=n_layers,
        gpu_layers=(n_layers - first_gpu_layer, *([0] * (len(gpus) - 1))),
        output_device=gpus[0],
        overrides={Unit.EXPERTS: moved} if any(moved) else {},
    )


def test_n_cpu_moe_stands_for_the_experts_of_the_first_layers_when_it_moves_exactly_them() -> None:
    scope = RuleScope(absent={Unit.EXPERTS: frozenset({0, 1})}, n_cpu_moe=True)
    plan = experts_plan(12, on_cpu=[2, 3, 4, 5])  # layers 0-1 have no experts
    assert n_cpu_moe(plan, scope) == 6
    assert placement_args(plan, scope=scope)[:4] == ["-ngl", "13", "--n-cpu-moe", "6"]
    assert override_rules(plan, scope=scope) == []
    assert readability(plan, scope) == 1
    # CPU layers count as experts on the CPU: -ngl 9 and the experts of layers 3-4 moved
    on_host = experts_plan(12, on_cpu=[0, 1, 2, 3, 4], first_gpu_layer=3)
    assert n_cpu_moe(on_host, RuleScope(n_cpu_moe=True)) == 5
    # not a prefix, or llama.cpp's regex would move other tensors too: an -ot rule
    gap = experts_plan(12, on_cpu=[2, 3, 5])
    assert n_cpu_moe(gap, scope) is None
    assert n_cpu_moe(plan, RuleScope(absent=scope.absent)) is None
    assert placement_args(plan)[2] == "-ot"  # without a scope, as before


def test_a_rule_runs_across_layers_without_its_unit_and_readability_counts_rules_and_ranges():
    plan = experts_plan(12, on_cpu=[2, 3, 5, 6, 9])
    scope = RuleScope(absent={Unit.EXPERTS: frozenset({4})})
    assert rule_ranges(plan, Unit.EXPERTS, CPU, scope) == [(2, 6), (9, 9)]
    assert override_rules(plan, scope=scope) == [r"blk\.([2-6]|9)\.ffn_.*_exps\.=CPU"]
    assert readability(plan, scope) == 1 + 2
    assert rule_ranges(plan, Unit.EXPERTS, CPU) == [(2, 3), (5, 6), (9, 9)]
    assert readability(plan) == 1 + 3


@pytest.mark.parametrize(
    ("model", "on_cpu"),
    [("gpt-oss-120b", range(0, 9)), ("glm-4.5-air:Q4_K_M", range(1, 20))],
)
def test_n_cpu_moe_reads_back_as_the_plan(model: str, on_cpu: range) -> None:
    inventory = load_inventory(model)
    hardware = load_hardware("reference")
    setting = resolve_setting(inventory, hardware, SolveRequest(), 8192, "f16")
    n_layers = setting.table.stored.shape[0]
    plan = experts_plan(n_layers, on_cpu=list(on_cpu), gpus=("CUDA0", "CUDA1"))
    scope = rule_scope(inventory, setting.table)
    assert scope.n_cpu_moe
    args = launch_args(setting, plan, hardware, scope)
    assert args[args.index("--n-cpu-moe") + 1] == str(on_cpu[-1] + 1) and "-ot" not in args
    report = plan_report(inventory, hardware, setting, plan, SCENARIO_CPU)
    check_round_trip(inventory, plan, report)  # device_map moves exactly the planned experts


def test_a_plan_prices_the_same_before_and_after_rendering() -> None:
    problem = random_problem(random.Random(11), n_layers=6, objective=Objective.DECODE)
    result = solve_placement(problem, time_limit_s=20, tolerance=0.01, scope=scope_of(problem))
    assert result.plan is not None
    assert result.objective_seconds == pytest.approx(plan_seconds(result.plan, problem))
