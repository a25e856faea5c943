"""Exceptions the core raises on purpose; anything else is a bug."""


class SegstudioError(Exception):
    """An error with a message meant for the user."""


class DataError(SegstudioError):
    """The data cannot be used (missing folder, no usable pairs...); `report` is the dataset
    report when one was made, so the user can see every file's problem."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class Cancelled(Exception):
    """A long task stopped because the user asked it to."""
