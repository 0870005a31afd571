"""Benchmark profiles, the EvalPlus runner, and fit's own performance benchmarks."""
