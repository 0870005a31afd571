"""The output head of the graph functions that seed an MTP block (qwen35, qwen3next,
nemotron_h, gemma4): the final norm is kept as ``h_nextn``, then the output rows, the logits
(with the final soft-cap where the architecture applies it), and the graph's three outputs.
The shared pre-norm template's head (``recipes._output_head``) ends in the same ``logits``."""

from __future__ import annotations

from solver.ggml import ops as g
from solver.ggml.ops import Tensor
from solver.llama.compute_graph.builder import GraphBuilder


def seeded_output_head(
    b: GraphBuilder, cur: Tensor, out_ids: Tensor, *, softcap: bool = False
) -> None:
    """Final norm (the MTP seed ``h_nextn``), output rows, logits; ``softcap``: the
    architecture soft-caps its logits when the model has ``final_logit_softcapping``."""
    cur = b.build_norm(cur, b.w("output_norm.weight"), None, -1)
    b.cb(cur, "h_nextn", -1)
    h_nextn = cur
    cur = g.get_rows(cur, out_ids)
    logits(b, cur, h_nextn, bias=False, softcap=softcap)


def logits(
    b: GraphBuilder, cur: Tensor, h_nextn: Tensor | None, *, bias: bool, softcap: bool
) -> None:
    """After the final norm (``cur``, the embeddings ``t_embd``): the output projection, plus
    ``output.bias`` where ``bias`` and the file has it, soft-capped where ``softcap`` and the
    model has ``final_logit_softcapping``; marks the logits, ``t_embd`` and ``h_nextn`` (when
    there is one) as the graph's outputs (``llm_graph_result::set_outputs``)."""
    b.cb(cur, "result_norm", -1)
    t_embd = cur
    cur = b.build_lora_mm(b.output_weight(), cur)
    output_b = b.w("output.bias") if bias else None
    if output_b is not None:
        cur = g.add(cur, output_b)
    if b.hp.f_logit_scale:  # granite: the logits divided by logits_scaling
        cur = g.scale(cur)
    if softcap and b.hp.f_final_logit_softcapping:
        cur = g.scale(cur)
        cur = g.unary(cur, "tanh")
        cur = g.scale(cur)
    b.cb(cur, "result_output", -1)
    b.gf.expand(cur)
    for t in (cur, t_embd, h_nextn):
        if t is not None:
            t.set_output()
