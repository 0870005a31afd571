"""The fastest placement that fits, with a proof: ``solve.solve`` is the entry point.

In: ``Inventory``, ``Hardware``, ``SolveRequest`` (contexts, KV types, batch, objective,
margins). Steps: ``setting`` resolves each candidate's workload once (KV per layer, cost
tables); ``cpsat`` builds and solves the CP-SAT model seeded by ``baselines`` (llama.cpp's
--fit, --n-cpu-moe, -ot exps=CPU, -ngl fill); ``solve`` verifies the rendered arguments with
the full memory model and re-solves with what it learned. Out: ``SolveReport`` (plan,
arguments, bytes per device, estimates, the rounds' decisions). ``whatif`` repeats it across
rigs and settings; ``launch_cost`` prices a user's own llama-server command.
"""
