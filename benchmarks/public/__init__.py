"""A public, labeled benchmark re-run in our own code: the "full strict" protocol of
github.com/seoyoungleeme/finops-cost-anomaly-benchmark (commit df55842, MIT licence).

Why it exists: our own quality benchmark (benchmarks/quality) is ours; this one was published by
someone else, with numbers for Prophet, IsolationForest, an LSTM autoencoder, EWMA and a
seasonal-naive MAD baseline. Re-implementing its data generator and metrics (not copying its
code) lets us put Sentinel on the same 12 labeled series and read our numbers next to theirs. The
EWMA and seasonal-naive rows are re-implemented too and must land on the published figures: that
is the check that the data and the metrics are the same as theirs.

Modules: ``generator`` (calibration table, series, injected events), ``models`` (EWMA,
SeasonalNaiveMAD), ``protocol`` (year-1 thresholds, metrics), ``run`` (the CLI:
``python -m benchmarks.public.run [--seeds 0 1 2] [--budget 0.01] [--dump DIR]``).
"""
