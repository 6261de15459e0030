"""Where a stream process starts and how the run's streams work together: the plan each stream receives, the
stream process around the measurement core, barriers and the stop flag (multiprocessing or torchrun), signals,
CUDA MPS, CPU placement, the timing lock, and the limits checked before any start."""
