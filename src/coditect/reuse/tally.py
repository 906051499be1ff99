"""The name reuse code has always used for the one usage counter (:mod:`coditect.llm.usage`)."""

from __future__ import annotations

from coditect.llm.usage import UsageCounter as TokenTally

__all__ = ["TokenTally"]
