"""Benchmarks of isonet2core: training and prediction speed, memory, FLOP/s and restoration
quality at fixed budgets, measured side by side in one run (``python -m bench``; see
``bench/__main__.py``). Not tests: nothing here gates CI (``tests/core/test_bench_smoke.py``
only checks that ``--quick`` runs)."""
