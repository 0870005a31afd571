# ruff: noqa: E501  (card passages keep the long lines real cards have)
"""Sampler advice read from model-card passages in the styles of real cards (Qwen, GLM,
GPT-OSS, DeepSeek, Gemma, Mistral, Unsloth): every value, its mode and its sentence."""

from __future__ import annotations

import pytest

from solver.card.document import parse_card
from solver.card.samplers import (
    SamplerAdvice,
    extract_samplers,
    family_defaults,
    family_of,
)


def advice(text: str) -> SamplerAdvice:
    return extract_samplers(parse_card(text, "card.md"))


def settings(found: SamplerAdvice, mode: str = "any") -> dict[str, float | None]:
    return {name: value.value for name, value in found.settings(mode).items()}  # type: ignore[arg-type]


QWEN3 = """---
license: apache-2.0
base_model: Qwen/Qwen3-32B
---
## Best Practices

To achieve optimal performance, we recommend the following settings:

1. **Sampling Parameters**:
   - For thinking mode (`enable_thinking=True`), use `Temperature=0.6`, `TopP=0.95`, `TopK=20`, and `MinP=0` (the default setting in `generation_config.json`). **DO NOT use greedy decoding**, as it can lead to performance degradation and endless repetitions.
   - For non-thinking mode (`enable_thinking=False`), we suggest using `Temperature=0.7`, `TopP=0.8`, `TopK=20`, and `MinP=0`.
   - For supported frameworks, you can adjust the `presence_penalty` parameter between 0 and 2 to reduce endless repetitions. However, using a higher value may occasionally result in language mixing.

### Advanced Usage: Switching Between Thinking and Non-Thinking Modes via User Input

We provide a soft switch mechanism: users can add `/think` and `/no_think` to user prompts or system messages to switch the model's thinking mode from turn to turn.
"""


def test_qwen3_thinking_and_non_thinking() -> None:
    found = advice(QWEN3)
    assert found.modes == ("thinking", "non_thinking")
    assert settings(found, "thinking") == {
        "temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0,
    }  # fmt: skip
    assert settings(found, "non_thinking") == {
        "temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0,
    }  # fmt: skip
    temp = found.settings("non_thinking")["temperature"]
    assert temp.sentence.startswith("For non-thinking mode (enable_thinking=False), we suggest")
    presence = next(v for v in found.values if v.name == "presence_penalty")
    assert (presence.value, presence.low, presence.high) == (None, 0.0, 2.0)
    assert [n.key for n in found.notes] == ["think_switch", "no_greedy"]
    assert "/no_think" in found.notes[0].sentence


QWEN3_CODER = """# Qwen3-Coder-30B-A3B-Instruct

## Best Practices

To achieve optimal performance, we recommend the following settings:

1. **Sampling Parameters**:
   - We suggest using `temperature=0.7`, `top_p=0.8`, `top_k=20`, `repetition_penalty=1.05`.

2. **Adequate Output Length**: We recommend using an output length of 65,536 tokens for most queries.
"""


def test_qwen3_coder_single_mode_with_repetition_penalty() -> None:
    found = advice(QWEN3_CODER)
    assert found.modes == ("any",)
    assert settings(found) == {
        "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repeat_penalty": 1.05,
    }  # fmt: skip
    assert found.notes == ()


GLM = """## Evaluation settings

Default Settings (Most Tasks)

- temperature: `1.0`
- top-p: `0.95`
- max new tokens: `131072`

For multi-turn agentic tasks (τ²-Bench and Terminal Bench 2), enable Preserved Thinking mode.
"""


def test_glm_bullet_list_with_colons() -> None:
    found = advice(GLM)
    assert settings(found) == {"temperature": 1.0, "top_p": 0.95}
    assert found.settings()["top_p"].sentence == "top-p: 0.95"


GPT_OSS = """# gpt-oss-120b

## Reasoning levels

You can adjust the reasoning level that suits your task across three levels:

* **Low:** Fast responses for general dialogue.
* **Medium:** Balanced speed and detail.
* **High:** Deep and detailed analysis.

The reasoning level can be set in the system prompts, e.g., "Reasoning: high".

## Recommended Sampling Parameters

We recommend sampling with `temperature=1.0` and `top_p=1.0`.
"""


def test_gpt_oss_reasoning_levels() -> None:
    found = advice(GPT_OSS)
    assert settings(found) == {"temperature": 1.0, "top_p": 1.0}
    assert [n.key for n in found.notes] == ["reasoning_levels"]
    assert "Reasoning: low|medium|high" in found.notes[0].advice


DEEPSEEK_R1 = """## Usage Recommendations

**We recommend adhering to the following configurations when utilizing the DeepSeek-R1 series models, including benchmarking, to achieve the expected performance:**

1. Set the temperature within the range of 0.5-0.7 (0.6 is recommended) to prevent endless repetitions or incoherent outputs.
2. **Avoid adding a system prompt; all instructions should be contained within the user prompt.**
3. For mathematical problems, it is advisable to include a directive in your prompt such as: "Please reason step by step, and put your final answer within \\boxed{}."
4. We recommend enforcing the model to initiate its response with "<think>\\n" at the beginning of every output.
"""


def test_deepseek_r1_range_with_recommended_value() -> None:
    found = advice(DEEPSEEK_R1)
    temperature = found.settings()["temperature"]
    assert (temperature.value, temperature.low, temperature.high) == (0.6, 0.5, 0.7)
    assert settings(found) == {"temperature": 0.6}
    assert [n.key for n in found.notes] == ["no_system_prompt", "think_prefix"]


DEEPSEEK_V3 = """## Chat Website & API Platform

### Temperature
In our web and application environments, the temperature parameter $T_{model}$ is set to 0.3. Because many users use the default temperature 1.0 in API call, we have implemented an API temperature mapping.
"""


def test_deepseek_v3_temperature_parameter_sentence() -> None:
    found = advice(DEEPSEEK_V3)
    assert found.settings()["temperature"].value == 0.3
    assert [v.value for v in found.conflicts] == [1.0]  # the API default, not a recommendation


GEMMA_UNSLOTH = """# Gemma 3 27B GGUF

According to the Gemma team, the recommended inference settings are `temperature = 1.0, top_k = 64, top_p = 0.95, min_p = 0.0` (optional, but 0.01 works well, llama.cpp default is 0.1).

| Setting | Value |
|---|---|
| Temperature | 1.0 |
| Top_K | 64 |
| Top_P | 0.95 |
| Min_P | 0.01 |
| Repetition Penalty | 1.0 |
"""


def test_gemma_table_then_prose() -> None:
    found = advice(GEMMA_UNSLOTH)
    # Tables come first: the table's min_p 0.01 is kept, the prose's 0.0 is a conflict.
    assert settings(found) == {
        "temperature": 1.0, "top_p": 0.95, "top_k": 64, "min_p": 0.01, "repeat_penalty": 1.0,
    }  # fmt: skip
    assert found.settings()["min_p"].sentence == "| Min_P | 0.01 |"
    assert [(v.name, v.value) for v in found.conflicts] == [("min_p", 0.0)]


MISTRAL = """## Usage

The model can be used with the following frameworks: vllm, transformers.

**Note 1**: We recommend using a relatively low temperature, such as `temperature=0.15`.

**Note 2**: Make sure to add a system prompt to the model to best tailor it to your needs.
"""


def test_mistral_low_temperature() -> None:
    found = advice(MISTRAL)
    assert settings(found) == {"temperature": 0.15}
    assert "such as temperature=0.15" in found.settings()["temperature"].sentence


MAGISTRAL = """## Sampling parameters

Please make sure to use:
- `top_p`: 0.95
- `temperature`: 0.7
- `max_tokens`: 40960
"""


def test_magistral_key_value_bullets() -> None:
    found = advice(MAGISTRAL)
    assert settings(found) == {"temperature": 0.7, "top_p": 0.95}


UNSLOTH_QWEN3_TABLE = """## Official Recommended Settings

| Parameter | Thinking mode | Non-thinking mode |
|---|---|---|
| Temperature | 0.6 | 0.7 |
| Min_P | 0.0 (optional, but 0.01 works well, llama.cpp default is 0.1) | 0.0 |
| Top_P | 0.95 | 0.8 |
| TopK | 20 | 20 |

```bash
./llama.cpp/llama-cli --model unsloth/Qwen3-30B-A3B-GGUF/Qwen3-30B-A3B-UD-Q4_K_XL.gguf \\
    --threads 32 --ctx-size 16384 --n-gpu-layers 99 \\
    --temp 0.6 --min-p 0.0 --top-p 0.95 --top-k 20 --presence-penalty 1.5
```
"""


def test_unsloth_mode_table_and_command_line() -> None:
    found = advice(UNSLOTH_QWEN3_TABLE)
    assert settings(found, "thinking") == {
        "temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0, "presence_penalty": 1.5,
    }  # fmt: skip
    assert settings(found, "non_thinking") == {
        "temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0, "presence_penalty": 1.5,
    }  # fmt: skip
    presence = found.settings("thinking")["presence_penalty"]
    assert presence.kind == "code" and "--presence-penalty 1.5" in presence.sentence
    assert found.settings("thinking")["temperature"].kind == "table"


UNSLOTH_GLM_FLASH = """### Usage Guide

For general use-case:
- temperature = 1.0
- top_p = 0.95
- repeat penalty = 1.0 (disabled)

For tool-calling:
- temperature = 0.7
- top_p = 1.0
"""


def test_unsloth_two_lead_ins_first_wins() -> None:
    found = advice(UNSLOTH_GLM_FLASH)
    assert settings(found) == {"temperature": 1.0, "top_p": 0.95, "repeat_penalty": 1.0}
    assert sorted((v.name, v.value) for v in found.conflicts) == [
        ("temperature", 0.7), ("top_p", 1.0),
    ]  # fmt: skip


QWEN3_HEADER_TABLE = """## Recommended settings

| Mode | temp | top_p | top_k | min_p |
|---|---|---|---|---|
| Thinking | 0.6 | 0.95 | 20 | 0 |
| Non-thinking | 0.7 | 0.8 | 20 | 0 |
"""


def test_header_table_rows_per_mode() -> None:
    found = advice(QWEN3_HEADER_TABLE)
    assert settings(found, "thinking") == {
        "temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0,
    }  # fmt: skip
    assert settings(found, "non_thinking")["temperature"] == 0.7


NO_ADVICE = """---
license: mit
---
# Tiny model

A small model for tests. It was trained on 2T tokens with a 4096-token context.
"""


def test_card_without_advice_gives_nothing() -> None:
    found = advice(NO_ADVICE)
    assert not found.has_values and found.values == () and found.notes == ()


@pytest.mark.parametrize(
    ("names", "family"),
    [
        (("unsloth/Qwen3-30B-A3B-GGUF",), "qwen3"),
        (("ggml-org/gpt-oss-120b-GGUF",), "gpt-oss"),
        (("x/y", "deepseek-ai/DeepSeek-R1"), "deepseek-r1"),
        (("bartowski/google_gemma-3-27b-it-GGUF",), "gemma"),
        (("someone/tiny",), None),
    ],
)
def test_family_of(names: tuple[str, ...], family: str | None) -> None:
    assert family_of(*names) == family


def test_family_defaults_say_so() -> None:
    found = family_defaults("qwen3")
    assert found.source.startswith("family defaults: qwen3 (Qwen/Qwen3-32B model card")
    assert settings(found, "non_thinking")["top_p"] == 0.8
    assert all(v.kind == "default" for v in found.values)


UNSLOTH_LEAD_INS = """### Recommended settings

Thinking mode:

* `temperature=0.6`, `top_p=0.95`, `top_k=20`, `min_p=0.0`, `presence_penalty=0.0`, `repetition_penalty=1.0`

Instruct (non-thinking) mode:

* `temperature=0.7`, `top_p=0.8`, `top_k=20`, `min_p=0.0`, `presence_penalty=1.5`, `repetition_penalty=1.0`

Adjust `presence_penalty` between 0 and 2 if you see endless repetitions.
"""


def test_unsloth_lead_in_lines_set_the_mode() -> None:
    found = advice(UNSLOTH_LEAD_INS)
    assert settings(found, "thinking") == {
        "temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0, "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
    }  # fmt: skip
    assert settings(found, "non_thinking") == {
        "temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0, "repeat_penalty": 1.0,
        "presence_penalty": 1.5,
    }  # fmt: skip
    ranged = [v for v in found.values if v.mode == "any"]
    assert [(v.name, v.value, v.low, v.high) for v in ranged] == [
        ("presence_penalty", None, 0.0, 2.0)
    ]


GITBOOK_HINT = """{% hint style="success" %}
According to the Gemma team, the optimal config for inference is\\
`temperature = 1.0, top_k = 64, top_p = 0.95, min_p = 0.0`
{% endhint %}
"""


def test_gitbook_hint_with_a_hard_line_break() -> None:
    found = advice(GITBOOK_HINT)
    assert settings(found) == {"temperature": 1.0, "top_p": 0.95, "top_k": 64, "min_p": 0.0}
