"""Named write boundaries where the reliability tests kill the process, as ``kill -9`` would.

``LR0FM_KILL_AT=NAME`` kills the process with ``SIGKILL`` the first time it reaches :func:`kill_point`
``NAME``; ``NAME@N`` the N-th time. Unset (always, outside the tests), a kill point costs one dictionary
lookup. The points: ``atomic-rename`` (a file fully written under its temporary name, not yet renamed:
:mod:`lr0fm.atomic`), ``cell-predictions`` (a cell's predictions written, its row not yet) and ``cell-row``
(a cell's row written) in ``lr0fm benchmark``.
"""

from __future__ import annotations

import os
import signal

#: environment variable naming the kill point (``NAME`` or ``NAME@N``)
KILL_ENV = "LR0FM_KILL_AT"
_seen: dict[str, int] = {}


def kill_point(name: str) -> None:
    """Kill this process here if ``LR0FM_KILL_AT`` names this point (and this is its N-th visit)."""
    target = os.environ.get(KILL_ENV)
    if not target:
        return
    point, _, nth = target.partition("@")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
