"""The service process collects garbage less often than Python's default (dms_db.garbage_collection)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dms_db.garbage_collection import SERVICE_GC_YOUNG_THRESHOLD

ROOT = Path(__file__).resolve().parents[2]


def test_serve_freezes_its_start_up_objects_and_raises_the_young_threshold() -> None:
    """``serve`` tunes its own process (checked in one of its own: the settings are process-wide)."""
    script = (
        "import gc, json, uvicorn\n"
        "from api.tap import server\n"
        "from dms_db.config import DmsConfig\n"
        "uvicorn.Server.run = lambda self, *args, **kwargs: None  # no serving: only what serve() sets up\n"
        "before = gc.get_threshold()\n"
        "server.serve(DmsConfig())\n"
        "print(json.dumps({'before': before, 'after': gc.get_threshold(), 'frozen': gc.get_freeze_count()}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["after"][0] == SERVICE_GC_YOUNG_THRESHOLD > seen["before"][0]
    assert seen["after"][1:] == seen["before"][1:]
    assert seen["frozen"] > 10_000  # the modules loaded at start-up
