"""Headless training engine: config in, plain events out (no Qt)."""
