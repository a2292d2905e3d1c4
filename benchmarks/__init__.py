"""Benchmarks of django-pjpixel against a baseline measured in the same run: ``make bench``.

``python -m benchmarks [--quick | --smoke]`` runs them all, prints each figure
with its ratio, and a markdown table (also written to ``artifacts/bench.md``)
with the machine it ran on. Not part of ``make test``; the test suite only
runs them at a tiny size (``tests/test_benchmarks_smoke.py``) without looking
at the timings.
"""
