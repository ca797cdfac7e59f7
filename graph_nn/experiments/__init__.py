"""Many runs at once: sweeps and benchmarks."""
