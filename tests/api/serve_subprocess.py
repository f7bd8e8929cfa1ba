"""The TAP service in a process of its own (``dms-db serve``), for tests and benchmarks that measure it from outside.

:func:`service_process` starts ``python -m api.cli serve`` exactly as an
operator would, with the configuration passed as ``DMS_*`` environment
variables, waits until ``/tap/availability`` answers, and stops it (SIGTERM,
then SIGKILL) on exit.  :class:`ServiceProcess` reads the server's memory
from ``/proc/<pid>/status``: resident set (``VmRSS``) and its peak
(``VmHWM``), which Linux lets the process's owner reset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from dms_db.config import DmsConfig
from dms_db.ports import free_port_block

__all__ = ["ServiceProcess", "config_environment", "service_process"]

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServiceProcess:
    """A running ``dms-db serve``: its base URL (``.../tap``), process id and log file."""

    url: str
    pid: int
    log_path: Path

    def _status_kib(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
        raise RuntimeError(f"/proc/{self.pid}/status has no {field}")

    def rss_bytes(self) -> int:
        """Resident set size now."""
        return self._status_kib("VmRSS") * 1024

    def peak_rss_bytes(self) -> int:
        """Peak resident set size since the start or the last :meth:`reset_peak` (VmHWM)."""
        return self._status_kib("VmHWM") * 1024

    def reset_peak(self) -> bool:
        """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel does not allow it."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
            return True
        except OSError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's output, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def config_environment(config: DmsConfig) -> dict[str, str]:
    """``DMS_*`` variables that reproduce ``config`` (fields left at their defaults are not set)."""
    environment = {}
    for name, value in config.model_dump(mode="json", exclude_defaults=True).items():
        environment[f"DMS_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return environment


@contextmanager
def service_process(config: DmsConfig, log_dir: Path, *, port: int | None = None) -> Iterator[ServiceProcess]:
    """Run ``dms-db serve`` for ``config`` on a free local port until the block exits.

    The child gets no ``DMS_*`` variable of this process and runs in ``log_dir``, so that no
    developer configuration (``DMS_CONFIG``, ``./dms-db.toml``) leaks into it.
    """
    port = port or free_port_block(1, start=30000)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DMS_")}
    environment.update(config_environment(config))
    log_path = log_dir / f"tap-{port}.log"
    command = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as log:
        child = subprocess.Popen(command, cwd=log_dir, env=environment, stdout=log, stderr=subprocess.STDOUT)
    process = ServiceProcess(f"http://127.0.0.1:{port}/tap", child.pid, log_path)
    try:
        _wait_until_available(child, process)
        yield process
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=20)


def _wait_until_available(child: subprocess.Popen[bytes], process: ServiceProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if child.poll() is not None:
            raise RuntimeError(f"dms-db serve exited with code {child.returncode}:\n{process.log_tail()}")
        try:
            if httpx.get(f"{process.url}/availability", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"dms-db serve did not answer within {START_TIMEOUT_S:.0f} s:\n{process.log_tail()}")
        time.sleep(0.2)
