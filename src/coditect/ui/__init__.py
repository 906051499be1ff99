"""The web view: missions, the live task graph, review before landing (``coditect ui``, docs/ui.md).

Needs the ``ui`` extra (``pip install 'coditect[ui]'``): Starlette, uvicorn and Jinja2.
"""

from __future__ import annotations

__all__: list[str] = []
