"""Tuning on real launches: the search space (batch, ubatch, threads, -ngl, -ts,
--n-cpu-moe), the trial rules (first trial = the profile, unfittable candidates pruned before
launch, slow short measurements pruned) and the outcome. Launching itself is ``profiles``'."""
