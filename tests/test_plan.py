"""Plan: the -ngl / -ts / -ot decision space and its bookkeeping."""

import pytest
from pydantic import ValidationError

from solver.plan import CPU, Plan
from solver.units import Unit


def test_layers_fill_cpu_first_then_gpus_in_order():
    plan = Plan(gpus=("CUDA0", "CUDA1"), n_layers=6, gpu_layers=(2, 3), output_on_gpu=True)
    assert plan.layer_devices == (CPU, "CUDA0", "CUDA0", "CUDA1", "CUDA1", "CUDA1")
    assert plan.n_gpu_layers == 6  # five layers plus the output head
    assert plan.output_device == "CUDA1"
    assert plan.tensor_split() == (2, 4)


def test_output_head_without_layers_goes_to_last_gpu():
    plan = Plan(gpus=("CUDA0", "CUDA1"), n_layers=4, gpu_layers=(0, 0), output_on_gpu=True)
    assert plan.n_gpu_layers == 1
    assert plan.output_device == "CUDA1"
    assert plan.tensor_split() == (0, 1)


def test_output_on_cpu_when_not_offloaded():
    plan = Plan(gpus=("CUDA0",), n_layers=4, gpu_layers=(4,), output_on_gpu=False)
    assert plan.n_gpu_layers == 4
    assert plan.output_device == CPU


def test_unit_override_wins_over_layer_device():
    moved = (CPU, None, None)
    plan = Plan(
        gpus=("CUDA0",),
        n_layers=3,
        gpu_layers=(3,),
        output_on_gpu=True,
        overrides={Unit.EXPERTS: moved},
    )
    assert plan.unit_device(0, Unit.EXPERTS) == CPU
    assert plan.unit_device(1, Unit.EXPERTS) == "CUDA0"
    assert plan.unit_device(0, Unit.ATTENTION) == "CUDA0"
    assert plan.devices_used == (CPU, "CUDA0")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gpus": ("CUDA0",), "n_layers": 3, "gpu_layers": (4,), "output_on_gpu": False},
        {"gpus": ("CUDA0",), "n_layers": 3, "gpu_layers": (1, 1), "output_on_gpu": False},
        {"gpus": (), "n_layers": 3, "gpu_layers": (), "output_on_gpu": True},
        {
            "gpus": ("CUDA0",),
            "n_layers": 3,
            "gpu_layers": (1,),
            "output_on_gpu": False,
            "overrides": {Unit.EXPERTS: (None,)},
        },
    ],
)
def test_inexpressible_plans_are_rejected(kwargs):
    with pytest.raises(ValidationError):
        Plan(**kwargs)
