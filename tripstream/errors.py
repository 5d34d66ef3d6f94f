"""Error tree: bad input is terminal (quarantine with the reason), transient errors retry."""

from __future__ import annotations


class TripstreamError(Exception):
    """Root of every error tripstream raises on purpose."""


class BadInputError(TripstreamError):
    """Terminal: the input itself is wrong. Quarantine it with the reason; never retry."""


class RowError(BadInputError):
    """One row of a file is invalid; the rest of the file still flows."""

    def __init__(self, file: str, line: int, reason: str, fix: str) -> None:
        self.file, self.line, self.reason, self.fix = file, line, reason, fix
        super().__init__(f"{file}, line {line}: {reason}. Try {fix}")


class FileRejectedError(BadInputError):
    """The whole file is unusable (wrong header, binary, no rows)."""

    def __init__(self, file: str, line: int, reason: str, fix: str) -> None:
        self.file, self.line, self.reason, self.fix = file, line, reason, fix
        super().__init__(f"{file}, line {line}: {reason}. Try {fix}")


class TransientError(TripstreamError):
    """A service is briefly unavailable (broker, database). Retry with backoff."""


class SetupError(TripstreamError):
    """The machine or configuration cannot run the stack; the message says what to do."""
