"""Named points where fault tests kill a writer process on purpose.

Crash-safety of two-phase commit can only be shown by crashing: the fault
tests start a loader with ``DMS_FAULT_POINT=<name>`` and the process kills
itself (SIGKILL, no clean-up) when it reaches that point.  Unset, this costs
one dictionary look-up per point.
"""

from __future__ import annotations

import os
import signal

ENV_VARIABLE = "DMS_FAULT_POINT"


def reach(point: str) -> None:
    """Die abruptly here if the environment names this point."""
    if os.environ.get(ENV_VARIABLE) == point:
        os.kill(os.getpid(), signal.SIGKILL)
