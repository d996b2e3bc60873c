"""hashjax.baselines."""
