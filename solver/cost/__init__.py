"""Estimated time per token (decode) and per ubatch (prefill) of a placement.

In: per-layer byte tables (``solver.plan.units``), ``Hardware`` and the workload (context,
ubatch, KV bytes per position), coefficients (spec sheet or calibrated). Out: ``CostTables``
(integer costs the CP-SAT model sums) and ``CostEstimate`` (t/s). The default coefficients are
fitted to the public speed corpus (``corpus`` loads it, ``corpus_fit`` fits its training split,
``fidelity`` scores estimates against it); ``calibrate`` fits a machine's own runs by
non-negative least squares and says what it cannot identify.
"""
