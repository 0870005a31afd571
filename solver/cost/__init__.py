"""Estimated time per token (decode) and per ubatch (prefill) of a placement.

In: per-layer byte tables (``solver.plan.units``), ``Hardware`` and the workload (context,
ubatch, KV bytes per position), coefficients (spec sheet or calibrated). Out: ``CostTables``
(integer costs the CP-SAT model sums) and ``CostEstimate`` (t/s). ``calibrate`` fits the
coefficients to measured runs by non-negative least squares and says what it cannot identify.
"""
