"""fit's model of a llama.cpp launch, one concept per sub-package, lower layers first:

- ``errors``, ``quantities``, ``datafiles``, ``text_table``: the shared ground (error kinds
  and exit codes, byte units and device names, where bundled data lives, table rendering).
- ``gguf``: GGUF files (local, split, Hub, catalogue) -> ``Inventory`` (tensors + metadata).
- ``hardware``: scenario TOML or this machine -> ``Hardware`` (GPUs, host, links).
- ``ggml``: ggml's ops, types, scheduler and graph allocator, ported and compiled.
- ``llama``: llama-server arguments + ``Inventory`` -> every buffer per device
  (``MemoryReport``): loader placement, KV cache, compute graph replay.
- ``plan``: what llama-server can express (``Plan``: -ngl/-ts/-ot) and its rendering.
- ``cost``: ``Plan`` + ``Hardware`` -> estimated seconds per token; calibration from runs.
- ``placement``: ``Inventory`` + ``Hardware`` + request -> the fastest verified ``Plan``
  (CP-SAT, baselines, what-if, pricing of a given launch).
- ``tune``: the search space and trial rules for tuning on real launches.

Imports only go downwards; ``pyproject.toml``'s import-linter contracts enforce it.
"""
