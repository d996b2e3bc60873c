"""hashjax.dcgh."""
