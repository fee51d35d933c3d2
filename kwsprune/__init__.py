"""kwsprune: data pruning of keyword-spotting training sets."""

__version__ = "0.1.0"
