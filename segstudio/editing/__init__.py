"""Correcting masks in the review (no Qt): paint tools, the edit history, the review's model, and
loading and saving the masks being corrected at their original size."""
