"""Benchmarks: ``synchrony bench`` (``make bench``) measures the engine, the boards, the CPU
baseline, the simulators, the rules' costs and the learning curves in one run; see
``docs/benchmarks.md``."""
