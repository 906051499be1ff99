"""Errors of the event archive."""

from __future__ import annotations

from coditect.errors import CoditectError

__all__ = ["ArchiveError"]


class ArchiveError(CoditectError):
    """Archiving failed: the destination or the event source could not be used.

    Nothing was acknowledged for the events of the failed batch: a later run archives them.
    """

    retryable_default = True
