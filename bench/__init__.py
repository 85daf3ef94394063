"""Benchmarks: scripts, never timed tests. `make bench` runs them; results go to bench/results/."""
