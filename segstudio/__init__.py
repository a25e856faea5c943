"""segstudio: train and review segmentation networks without writing code."""

__version__ = "0.1.0"
