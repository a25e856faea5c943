"""Exceptions the core raises on purpose; anything else is a bug."""


class SegstudioError(Exception):
    """An error with a message meant for the user."""


class DataError(SegstudioError):
    """The data cannot be used (missing folder, no usable pairs...)."""


class Cancelled(Exception):
    """A long task stopped because the user asked it to."""
