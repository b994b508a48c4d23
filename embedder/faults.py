"""Named crash points for the fault-injection tests (a no-op unless the variable is set).

``EARTHVEC_KILL_AT=point[:n]`` makes this process SIGKILL itself the ``n``-th time (default
the first) it reaches ``point``, so a test can kill a real ``earthvec`` process exactly
between two steps of a write: after a temporary file is flushed but before its rename
(``tmp-written``), after a shard file is renamed into place but before the
journal has it (``shard-written``), after the journal line (``journaled``), after the
index files of a build are written (``index-written``), after the manifest is published
but before the sweep (``published``), and after the sweep (``swept``). Random kills
(``bench.chaos``) cover the moments in between.
"""

from __future__ import annotations

import os
import signal

ENV = "EARTHVEC_KILL_AT"
_SEEN: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process here when ``$EARTHVEC_KILL_AT`` names this point (and count)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
