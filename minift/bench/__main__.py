"""``python -m minift.bench``: the benchmark table (the same as ``minift bench``)."""

from . import run_benchmarks

run_benchmarks()
