"""The instrument server's old import path; it lives in :mod:`pytest_litmus.sharing` now.

``from pytest_litmus.server import serve, connect_remote`` (as docs/sharing.md
showed) keeps working.
"""

from __future__ import annotations

from pytest_litmus.sharing import *  # noqa: F403
from pytest_litmus.sharing import __all__ as __all__
