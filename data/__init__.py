"""Bundled data only (no code): GPU spec table, hardware scenarios, model catalogue,
llama.cpp's architecture list and option table, the tiny synthetic models' settings.
Read through ``solver.datafiles``."""
