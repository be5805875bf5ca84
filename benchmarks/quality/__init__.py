"""Detection quality benchmark: labeled synthetic cost series, a scorer and a seed-vs-robust run.

Why it exists: the demo source shows a handful of known anomalies; tuning a detector needs
hundreds of labeled events and hundreds of series of normal-but-tricky behaviour ("traps") so
that recall, precision and the false-alert rate per pattern are numbers, not anecdotes.

Usage: ``python -m benchmarks.quality.run [--seeds 5] [--series 400] [--days 150]``.
"""
