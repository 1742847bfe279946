"""Benchmarks: load (`bench.load`), learning quality (`bench.quality`), speed (`bench.policies`)."""
