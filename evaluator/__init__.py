"""The evaluator: runs benchmarks for catalog models and records results in the catalog database."""
