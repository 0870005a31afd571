"""Rendering plans as llama-server arguments."""

import random
import re

from solver.plan.plan import Plan
from solver.plan.render import layers_regex, override_rules, placement_args
from solver.plan.units import Unit
from solver.quantities import CPU


def test_layer_regex_matches_exactly_the_chosen_layers():
    rng = random.Random(7)
    universe = range(0, 130)
    for _ in range(400):
        chosen = {n for n in universe if rng.random() < rng.choice((0.1, 0.5, 0.9))} or {0}
        pattern = re.compile(rf"^{layers_regex(chosen)}$")
        matched = {n for n in universe if pattern.match(str(n))}
        assert matched == chosen, (sorted(chosen), pattern.pattern)


def test_layer_regex_is_the_short_form_people_write():
    assert layers_regex(range(24)) == "([0-9]|1[0-9]|2[0-3])"
    assert layers_regex(range(20, 36)) == "(2[0-9]|3[0-5])"
    assert layers_regex([7]) == "7"


def test_rules_group_layers_per_unit_and_target():
    moved = tuple(CPU if il < 10 else None for il in range(12))
    plan = Plan(
        gpus=("CUDA0",),
        n_layers=12,
        gpu_layers=(12,),
        output_device="CUDA0",
        overrides={Unit.EXPERTS: moved},
    )
    assert override_rules(plan) == [r"blk\.[0-9]\.ffn_.*_exps\.=CPU"]
    assert placement_args(plan) == [
        "-ngl", "13", "-ot", r"blk\.[0-9]\.ffn_.*_exps\.=CPU", "--fit", "off",
    ]  # fmt: skip


def test_two_gpus_get_an_integer_tensor_split():
    plan = Plan(gpus=("CUDA0", "CUDA1"), n_layers=10, gpu_layers=(6, 4), output_device="CUDA1")
    assert placement_args(plan)[:4] == ["-ngl", "11", "-ts", "6,5"]


def test_a_rule_moves_exactly_the_tensors_of_its_unit_in_every_catalogue_model():
    from solver.gguf.catalogue import catalogue_models
    from solver.gguf.sources import load_inventory
    from solver.plan.render import UNIT_PATTERNS
    from solver.plan.units import unit_of

    for model in catalogue_models():
        for tensor in load_inventory(model).tensors:
            if tensor.layer is None:
                continue
            moved_by = [
                unit
                for unit, fragment in UNIT_PATTERNS.items()
                if re.search(rf"blk\.{tensor.layer}\.{fragment}", tensor.name)
            ]
            assert moved_by == ([unit_of(tensor)] if unit_of(tensor) else []), tensor.name
