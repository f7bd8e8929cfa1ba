"""The service process collects garbage less often than Python's default (see api.tap.server)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from api.tap.server import SERVICE_GC_YOUNG_THRESHOLD

ROOT = Path(__file__).resolve().parents[2]


def test_the_service_process_freezes_its_start_up_objects_and_raises_the_young_threshold() -> None:
    """Checked in a process of its own: the settings are process-wide and must not leak into the tests."""
    script = (
        "import gc, json\n"
        "from api.tap.server import tune_garbage_collection\n"
        "before = gc.get_threshold()\n"
        "tune_garbage_collection()\n"
        "print(json.dumps({'before': before, 'after': gc.get_threshold(), 'frozen': gc.get_freeze_count()}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["after"][0] == SERVICE_GC_YOUNG_THRESHOLD > seen["before"][0]
    assert seen["after"][1:] == seen["before"][1:]
    assert seen["frozen"] > 10_000  # the modules loaded at start-up
