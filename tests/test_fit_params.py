"""fit against llama.cpp's own fitter on two RPC devices with the same budget.

The launched cases (``profiles.fitter_comparison.CI_CASES``) run ``llama-fit-params`` and
``fit solve`` for the same two ``ggml-rpc-server`` devices, launch both plans on the real
llama-server and assert what fit must show: its plan within budget in the real log (the RPC
servers' exact bytes), priced at least as fast as llama-fit-params' plan by fit's cost model,
and at least as many weight bytes on the devices unless fewer are strictly faster (each CI
case is one where llama-fit-params' plan stays within the budget, so all three apply).
``python -m benchmarks.fit_params`` runs every case and prints the table.
"""

from __future__ import annotations

import pytest

from profiles.fidelity_cases import model_blueprint
from profiles.fit_params import fit_target, parse_fit_params_output, reported_free_bytes
from profiles.fitter_comparison import CI_CASES, Case, run_case
from solver.errors import OperationFailed
from solver.quantities import MIB

FREE = 25_276_071_936  # what a CPU-backed RPC device reported here (physical memory)


def test_fit_target_is_the_budget_fit_cpp_fits_to() -> None:
    target = fit_target(40 * MIB + 123, FREE)
    # fit.cpp: target = free - margin, the margin in whole MiB; never above the asked budget
    assert target.budget_bytes == FREE - target.margin_mib * MIB
    assert target.budget_bytes <= 40 * MIB + 123 < target.budget_bytes + MIB
    assert fit_target(FREE - 7 * MIB, FREE).margin_mib == 7
    for impossible in (0, FREE + 1):
        with pytest.raises(OperationFailed, match="not within"):
            fit_target(impossible, FREE)


def test_fit_params_output_and_rpc_free_memory_are_read() -> None:
    # tools/fit-params/fit-params.cpp prints the -ot list in double quotes
    stdout = (
        "-c 2048 -ngl 9 -ts 4,5 -ot "
        '"blk\\.3\\.ffn_(gate|up|gate_up|down).*=RPC0[127.0.0.1:4001],blk\\.7\\.ffn_down.*=CPU"\n'
    )
    assert parse_fit_params_output(stdout) == (
        "-c", "2048", "-ngl", "9", "-ts", "4,5", "-ot",
        "blk\\.3\\.ffn_(gate|up|gate_up|down).*=RPC0[127.0.0.1:4001],blk\\.7\\.ffn_down.*=CPU",
    )  # fmt: skip
    with pytest.raises(OperationFailed, match="no arguments"):
        parse_fit_params_output("llama_params_fit: failed\n")
    # ggml-rpc.cpp rpc_server::get_device_memory under GGML_RPC_DEBUG=1
    log = f"[get_device_memory] device: 0, free_mem: {FREE}, total_mem: {FREE}\n"
    assert reported_free_bytes({"127.0.0.1:4001": log, "127.0.0.1:4002": ""}) == {
        "127.0.0.1:4001": FREE
    }


# Measured at 959906e: on qwen3moe/8 x0.6 fit's plan is priced 0.958x of llama-fit-params'
# (1007 vs 1051 t/s), 0.16 MiB fewer weights on the devices. fit's own memory model puts
# `-ngl 9 -ts 5,4 -ot blk\.4\.ffn_.*_exps\.=@1` at 17,218,048 and 13,848,736 B of a
# 17,973,248 B budget and prices it at 1051 t/s, yet the solver returns the slower plan with a
# proven gap under 1e-6: it charges RPC0's combination (layers + experts, full offload)
# 19.98 MiB, the replay of `-ngl 9 -ts 5,4` (pipelined: no -ot), where that plan (one -ot, so
# not pipelined) gives 7.35 MiB, both as the real llama-server allocates them.
NOT_YET = pytest.mark.xfail(
    strict=True,
    reason="the solver's assumed buffers exclude a plan its memory model says fits (0.958x)",
)
CASES = [pytest.param(c, marks=NOT_YET) if c.id == "qwen3moe/8 x0.6" else c for c in CI_CASES]


@pytest.mark.llama
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_fit_shows_what_it_must_against_llama_fit_params(
    case: Case, synthetic_gguf, shared_rpc_servers, server_env, tmp_path
) -> None:
    found = model_blueprint(case.model)
    assert found is not None
    (model,) = synthetic_gguf(*found)
    result = run_case(case, model, shared_rpc_servers, env=server_env, log_dir=tmp_path)
    # the comparison ran: both plans launched on both devices under the one budget
    assert set(result.fit.device_bytes) == set(result.llama.device_bytes) == {"RPC0", "RPC1"}
    assert result.rival, f"llama-fit-params overfilled a device: {result.llama.device_bytes}"
    assert not result.failures(), "\n".join(
        [*result.failures(), f"fit: {result.fit.args}", f"llama-fit-params: {result.llama.args}"]
    )
