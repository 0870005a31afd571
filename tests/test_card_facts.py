"""Model facts and quality rows read from card passages in the labs' and quantizers' styles."""

from __future__ import annotations

import pytest

from solver.card.document import parse_card
from solver.card.facts import card_facts
from solver.card.quality import quality_rows
from solver.errors import BadInput

QWEN3_MOE = """---
library_name: transformers
license: apache-2.0
license_link: https://huggingface.co/Qwen/Qwen3-235B-A22B/blob/main/LICENSE
pipeline_tag: text-generation
base_model:
- Qwen/Qwen3-235B-A22B
tags: [unsloth]
---
# Qwen3-235B-A22B

## Model Overview

**Qwen3-235B-A22B** has the following features:
- Type: Causal Language Models
- Number of Parameters: 235B in total and 22B activated
- Number of Layers: 94
- Number of Attention Heads (GQA): 64 for Q and 4 for KV
- Number of Experts: 128
- Number of Activated Experts: 8
- Context Length: 32,768 natively and 131,072 tokens with YaRN.

- Significantly enhanced reasoning, surpassing QwQ on mathematics, code generation and
  commonsense logical reasoning.
- Expertise in agent capabilities, with tool calling in both modes and leading performance
  in complex agent-based tasks; math and coding benchmarks below.
- Support of 100+ languages and dialects with strong multilingual instruction following.
- Tool use through the chat template's tool calls.
"""

UNSLOTH_KLD = """## Unsloth Dynamic 2.0 quants

| Quant | Size (GB) | KLD | PPL |
|---|---|---|---|
| UD-Q4_K_XL | 134 | 0.0122 | 5.82 |
| Q4_K_M (standard) | 142 | 0.0245 | 5.86 |
| UD-IQ2_XXS | 74 | 0.1280 | - |
"""


def test_qwen3_moe_overview() -> None:
    facts = card_facts(parse_card(QWEN3_MOE, "card.md"))
    assert facts.name == "Qwen3-235B-A22B"
    assert facts.base_model == ("Qwen/Qwen3-235B-A22B",)
    assert facts.license == "apache-2.0"
    assert (facts.params_b, facts.active_params_b, facts.moe) == (235.0, 22.0, True)
    assert (facts.layers, facts.experts, facts.active_experts) == (94, 128, 8)
    assert (facts.context_length, facts.extended_context_length) == (32768, 131072)
    assert facts.specialties == (
        "coding",
        "reasoning",
        "math",
        "tool use",
        "agents",
        "multilingual",
    )


def test_dense_card_and_name_shape() -> None:
    dense = card_facts(parse_card("# Model\n\n- Number of Parameters: 32.8B\n", "c.md"))
    assert (dense.params_b, dense.active_params_b, dense.moe) == (32.8, None, False)
    named = card_facts(parse_card("# Qwen3-30B-A3B-Instruct-2507\n\n128K context window\n", "c"))
    assert (named.params_b, named.active_params_b, named.moe) == (30.0, 3.0, True)
    assert named.context_length == 128 * 1024
    nothing = card_facts(parse_card("no facts here", "c"))
    assert (nothing.params_b, nothing.moe, nothing.context_length) == (None, None, None)


def test_quality_rows() -> None:
    rows = quality_rows(parse_card(UNSLOTH_KLD, "c"))
    assert [(r.label, r.kld, r.ppl) for r in rows] == [
        ("UD-Q4_K_XL", 0.0122, 5.82),
        ("Q4_K_M (standard)", 0.0245, 5.86),
        ("UD-IQ2_XXS", 0.128, None),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("---\nlicense: [mit\n---\n", "the front matter is not valid YAML (line 2)"),
        ("---\nlicense: mit\n", "the front matter opened by '---' on line 1 is never closed"),
        ("---\n- a\n- b\n---\n", "the front matter is not a mapping of keys to values"),
    ],
)
def test_bad_front_matter(text: str, problem: str) -> None:
    with pytest.raises(BadInput, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_card(text, "card.md")
