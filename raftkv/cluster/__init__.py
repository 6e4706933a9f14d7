"""Running several members on one machine: development, tests and benchmarks."""
