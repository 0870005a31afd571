"""Qwen3-Next files converted before attn_qkv / attn_gate: one fused ssm_in per DeltaNet layer.

llama.cpp still loads them (``TENSOR_NOT_REQUIRED`` on both forms) and builds
``build_qkvz``'s legacy path; fit's loadable check takes either form and its qwen3next graph
builds the same split. The 8-layer synthetic model (two full-attention layers) against the
real llama-server on the CPU and on two RPC devices.
"""

from __future__ import annotations

import pytest

from profiles.server import RpcServers
from solver.errors import BadInput
from solver.gguf.blueprint import tensor_specs
from solver.gguf.loadable import check_loadable
from solver.gguf.synthetic import tiny_blueprint
from tests.gguf_factory import SyntheticFactory
from tests.test_loadable import blueprint_inventory

LAUNCHES = {
    "cpu": ("-c 1024", False),
    "split": ("-c 1024 -ngl 99 -ts 1,1", True),
    "slots-exps-cpu": ("-c 4096 -np 4 -ngl 99 -ts 2,1 -ot exps=CPU -fa off", True),
}


@pytest.mark.llama
@pytest.mark.slow
@pytest.mark.parametrize("name", list(LAUNCHES))
def test_legacy_ssm_in_meets_every_target(
    name: str,
    synthetic_gguf: SyntheticFactory,
    measure_llama,
    request: pytest.FixtureRequest,
) -> None:
    blueprint = tiny_blueprint("qwen3next").model_copy(
        update={"n_layer": 8, "legacy_ssm_in": True, "name": "legacy-qwen3next-8l"}
    )
    names = {spec.name for spec in tensor_specs(blueprint)}
    assert "blk.0.ssm_in.weight" in names and "blk.0.attn_qkv.weight" not in names
    (path,) = synthetic_gguf(blueprint)
    args, on_rpc = LAUNCHES[name]
    rpc: RpcServers | None = request.getfixturevalue("shared_rpc_servers") if on_rpc else None
    measured = measure_llama(path, *args.split(), rpc=rpc)
    assert measured.fidelity.compute_modelled
    assert not measured.fidelity.misses(), "\n".join(measured.fidelity.misses())


def test_loadable_takes_either_projection() -> None:
    """ssm_in instead of attn_qkv + attn_gate loads; without both forms the file is refused."""
    blueprint = tiny_blueprint("qwen3next").model_copy(update={"legacy_ssm_in": True})
    check_loadable(blueprint_inventory(blueprint))
    with pytest.raises(BadInput, match=r"blk\.0\.attn_qkv\.weight' is missing"):
        check_loadable(blueprint_inventory(blueprint, without=frozenset({"blk.0.ssm_in.weight"})))
