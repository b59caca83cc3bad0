"""healthledger's benchmarks: one harness (harness.py) and a module per benchmark.

Run one with `python -m bench.NAME --help`, or `python -m bench` (`make bench`) for a short
run of every benchmark and one table of its targets. docs/BENCHMARKS.md has the results.
"""
