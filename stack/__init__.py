"""Real services for development, tests, benchmarks and the demo, started on 127.0.0.1 (local.py)."""
