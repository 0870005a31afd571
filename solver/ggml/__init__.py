"""A port of the parts of ggml that decide buffer sizes: tensor ops and type sizes, the
backend scheduler (graph splits, input copies) and the graph allocator (``ggml-alloc.c``).

In: a compute graph of ``ops.Tensor`` and a device per node. Out: bytes of each backend's
compute buffer and the number of graph splits, as llama.cpp's ``sched_reserve`` computes them.
``engine`` is the compiled, memoised equivalent of ``sched`` + ``alloc`` (checked against them).
``cuda_ops`` is ggml-cuda's ``supports_op``: the ops the scheduler must run elsewhere.
Knows nothing of llama.cpp's models or arguments.
"""
