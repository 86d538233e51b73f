"""Real services that tests and benchmarks start themselves on free loopback ports (never a system one).

``Mosquitto`` and ``VictoriaMetrics`` are context managers that can also be stopped and restarted on
the same port mid-test (outage tests). A missing binary is an error with the install hint (for tests a
failure, not a skip: CI installs both, scripts/test.sh). ``tests/services.py`` re-exports this module.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s} s")


def _binary(name: str, package: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(f"{name} not found: install the Debian package {package} (scripts/test.sh does)")


class _Service:
    """One child process on a fixed free port; ``stop``/``start`` keep the port for restarts."""

    def __init__(self) -> None:
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix=f"sensorhub-{type(self).__name__.lower()}-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        log = (self._dir / "service.log").open("ab")
        self._proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT, cwd=self._dir)
        _wait_listening(self.port, self._proc)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    @property
    def log(self) -> str:
        path = self._dir / "service.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the running server has used; 0.0 when it is not running."""
        if self._proc is None or self._proc.poll() is not None:
            return 0.0
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> _Service:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class Mosquitto(_Service):
    """mosquitto 2.x (MQTT 3.1.1 and 5, shared subscriptions) on 127.0.0.1:<port>, anonymous, in memory."""

    def _command(self) -> list[str]:
        conf = self._dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 100000\nlog_type error\nlog_type warning\n"
        )
        return [_binary("mosquitto", "mosquitto"), "-c", str(conf)]

    def __enter__(self) -> Mosquitto:
        self.start()
        return self


class VictoriaMetrics(_Service):
    """VictoriaMetrics single-node: accepts InfluxDB line protocol on /api/v2/write; data kept across
    restarts in its own directory (the outage test restarts it)."""

    def _command(self) -> list[str]:
        return [
            _binary("victoria-metrics", "victoria-metrics"),
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self._dir / 'data'}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-loggerLevel=ERROR",
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:  # the port opens before the HTTP API is ready
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1.0) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("victoria-metrics /health not ready")

    def __enter__(self) -> VictoriaMetrics:
        self.start()
        return self
