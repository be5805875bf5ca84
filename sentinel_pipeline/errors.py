"""Errors a user can act on: each message names what was wrong and how to fix it."""

from __future__ import annotations


class SentinelError(Exception):
    """Base class of errors that should stop a run with a readable message."""


class SourceError(SentinelError):
    """Billing input that cannot be read or trusted (file, column, value or currency problems)."""


class StorageError(SentinelError):
    """The data dir cannot be read or written."""


class DamagedPartitionError(StorageError):
    """A table file exists but cannot be read: rerunning its day rewrites it."""


class ConfigError(SentinelError):
    """A setting or command-line option is invalid."""
