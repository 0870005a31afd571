"""The rig: GPUs (memory, bandwidth, FLOP/s, link), host (RAM, channels, cores, CPU flags).

In: a scenario name or TOML file (``data/hardware/``), ``detect`` for this machine (NVML,
/proc), the GPU spec table (``data/gpus.csv``). Out: ``Hardware`` (``scenario.load_hardware``,
``detect.load_rig``). Unknown GPUs and malformed scenarios are ``BadInput``.
"""
