"""Benchmarks (``make bench`` / ``python -m bench``): see docs/benchmarks.md and bench/__main__.py."""
