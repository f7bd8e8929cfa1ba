"""TAP async jobs (UWS 1.1) at /tap/async: storage, execution, documents and HTTP handlers.

:class:`JobManager` runs the jobs of one service process (the app's lifespan
starts and stops it); :func:`uws_router` serves them.
"""

from api.tap.uws.handlers import uws_router
from api.tap.uws.runner import JobManager
from api.tap.uws.sweeper import SWEEP_INTERVAL_S

__all__ = ["SWEEP_INTERVAL_S", "JobManager", "uws_router"]
