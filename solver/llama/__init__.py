"""llama.cpp's side of a launch: what llama-server allocates for given arguments.

In: llama-server arguments (parsed exactly as the pinned ``arg.cpp`` does, ``args``), an
``Inventory`` and optionally ``Hardware``/CPU features. Out: ``MemoryReport`` (``memory``):
per device weights, repack, KV, recurrent state, compute, output, total and graph splits, plus
where each tensor and layer lands (``device_map``, the loader's rules: -ngl, -ts, -ot,
--n-cpu-moe). The compute buffer comes from replaying llama.cpp's graph (``compute_graph``)
through ``solver.ggml``. Options fit does not model are refused, never guessed.
"""
