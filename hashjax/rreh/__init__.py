"""hashjax.rreh."""
