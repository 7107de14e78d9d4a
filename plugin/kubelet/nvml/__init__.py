"""NVML access: one interface (``types.Nvml``), a real pynvml backend and a simulated one."""
