"""Facts of the machine: the device (CUDA, XPU, CPU) behind one interface, system information, and telemetry."""
