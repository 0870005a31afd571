"""Plan: the -ngl / -ts / -ot decision space and its bookkeeping."""

import pytest
from pydantic import ValidationError

from solver.plan.plan import Plan, split_slots
from solver.plan.units import Unit
from solver.quantities import CPU


def test_layers_fill_cpu_first_then_gpus_in_order():
    plan = Plan(gpus=("CUDA0", "CUDA1"), n_layers=6, gpu_layers=(2, 3), output_device="CUDA1")
    assert plan.layer_devices == (CPU, "CUDA0", "CUDA0", "CUDA1", "CUDA1", "CUDA1")
    assert plan.n_gpu_layers == 6  # five layers plus the output head
    assert plan.output_device == "CUDA1"
    assert plan.tensor_split() == (2, 4)


def test_output_head_without_layers_may_go_to_any_gpu():
    plan = Plan(gpus=("CUDA0", "CUDA1"), n_layers=4, gpu_layers=(0, 0), output_device="CUDA0")
    assert plan.n_gpu_layers == 1
    assert plan.tensor_split() == (1, 0)


def test_output_head_may_sit_on_a_gpu_after_the_last_layer():
    # -ngl 4 -ts 3,1 on 3 layers: the fourth slot, the head, lands alone on the second GPU.
    plan = Plan(gpus=("CUDA0", "CUDA1"), n_layers=3, gpu_layers=(3, 0), output_device="CUDA1")
    assert plan.tensor_split() == (3, 1)


def test_nothing_offloaded_keeps_the_head_on_the_cpu():
    plan = Plan(gpus=("CUDA0",), n_layers=4, gpu_layers=(0,))
    assert plan.n_gpu_layers == 0
    assert plan.output_device == CPU


def test_unit_override_wins_over_layer_device():
    moved = (CPU, None, None)
    plan = Plan(
        gpus=("CUDA0",),
        n_layers=3,
        gpu_layers=(3,),
        output_device="CUDA0",
        overrides={Unit.EXPERTS: moved},
    )
    assert plan.unit_device(0, Unit.EXPERTS) == CPU
    assert plan.unit_device(1, Unit.EXPERTS) == "CUDA0"
    assert plan.unit_device(0, Unit.ATTENTION) == "CUDA0"
    assert plan.devices_used == (CPU, "CUDA0")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gpus": ("CUDA0",), "n_layers": 3, "gpu_layers": (4,), "output_device": "CUDA0"},
        {"gpus": ("CUDA0",), "n_layers": 3, "gpu_layers": (2,)},
        {"gpus": ("C0",), "n_layers": 3, "gpu_layers": (1, 1), "output_device": "C0"},
        {"gpus": (), "n_layers": 3, "gpu_layers": (), "output_device": "CUDA0"},
        {"gpus": ("A", "B"), "n_layers": 3, "gpu_layers": (2, 1), "output_device": "A"},
        {"gpus": ("A", "B"), "n_layers": 3, "gpu_layers": (0, 1), "output_device": "A"},
        {
            "gpus": ("CUDA0",),
            "n_layers": 3,
            "gpu_layers": (1,),
            "overrides": {Unit.EXPERTS: (None,)},
        },
    ],
)
def test_inexpressible_plans_are_rejected(kwargs):
    with pytest.raises(ValidationError):
        Plan(**kwargs)


def test_integer_tensor_split_reproduces_layer_counts_exactly():
    # -ts written as slot counts must give back exactly those counts through llama.cpp's
    # float32 split arithmetic, for every split of up to 130 slots over 2 and 3 GPUs.
    for n_slots in range(1, 131):
        for a in range(n_slots + 1):
            counts = (a, n_slots - a)
            assert split_slots(counts, n_slots) == counts
        for a in range(0, n_slots + 1, 7):
            for b in range(0, n_slots - a + 1, 5):
                counts = (a, b, n_slots - a - b)
                assert split_slots(counts, n_slots) == counts


def test_free_memory_proportions_split_like_llama_cpp():
    # 24 GB and 16 GB cards sharing 49 slots: 3/5 of them go to the first.
    assert split_slots((24.0, 16.0), 49) == (30, 19)
