"""hashjax: cross-modal hashing research in JAX (RREH, DCGH, baselines, evaluation)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
