"""`healthledger serve` as a subprocess: start, wait until ready, kill -9, stop, restart.

Tests that crash, stop or multiply servers, the demo and the benchmarks run the
real command through a `ServeProcess`. It starts `serve` on port 0 with the
plain-HTTP health port on port 0 too, and reads the ports the server bound from
its log; readiness is polled on the health port, so no client certificate is
needed. A restart asks for the same ports again, so clients keep their base URL.
With several workers each binds the health port itself, so the harness holds a
`ReservedPort` for it instead. Every start appends to one log file, which
failures quote.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from .ports import ReservedPort

HOST = "127.0.0.1"
START_SECONDS = 30
STOP_SECONDS = 30
CLI_SECONDS = 60
POLL_SECONDS = 0.05
# What uvicorn and the health listener log once they listen; with port 0, the port bound.
API_PORT_LINE = re.compile(r"Uvicorn running on https://\S+:(\d+)\b")
HEALTH_PORT_LINE = re.compile(r"Health probes on http://\S+:(\d+)\b")


class ServeFailedError(Exception):
    """The server exited, was not ready in time or did not stop; the message quotes its log."""


class ServeProcess:
    """One `healthledger serve` on `network_dir` and `ledger_url` (None: the network's own
    ledgers), with `workers` worker processes and any further `flags`; restartable on the
    same ports.

    Use it as a context manager: on exit a server still running is killed and a reserved
    port given up, so a failing test never leaves a server behind.
    """

    def __init__(
        self,
        network_dir: Path,
        ledger_url: str | None,
        log: Path,
        *,
        workers: int = 1,
        flags: Sequence[str] = (),
    ) -> None:
        self.network_dir = network_dir
        self.ledger_url = ledger_url
        self.log = log
        self.workers = workers
        self.flags = tuple(flags)
        self.process: subprocess.Popen[bytes] | None = None
        self._reserved_health = ReservedPort(HOST) if workers > 1 else None
        self._port: int | None = None
        self._health_port = self._reserved_health.port if self._reserved_health else None
        self._log_offset = 0

    @property
    def port(self) -> int:
        """The API port, known once the first start has logged it."""
        if self._port is None:
            raise RuntimeError("the API port is known once the server has started")
        return self._port

    @property
    def health_port(self) -> int:
        if self._health_port is None:
            raise RuntimeError("the health port is known once the server has started")
        return self._health_port

    @property
    def base_url(self) -> str:
        """Where clients send GraphQL over mutual TLS."""
        return f"https://{HOST}:{self.port}"

    @property
    def health_url(self) -> str:
        return f"http://{HOST}:{self.health_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, seconds: float = START_SECONDS) -> ServeProcess:
        """Start the server and return once it is ready; else ServeFailedError quoting its log."""
        self.launch()
        self.wait_ready(seconds)
        return self

    def launch(self) -> None:
        """Start the process without waiting (to start several at once, then `wait_ready`)."""
        if self.running:
            raise RuntimeError("the server is already running")
        command = [
            *("serve", "--network", str(self.network_dir), "--host", HOST),
            *("--port", str(self._port or 0), "--health-port", str(self._health_port or 0)),
            *("--workers", str(self.workers)),
            *(("--ledger", self.ledger_url) if self.ledger_url else ()),
            *self.flags,
        ]
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as output:
            # Its own process group, so a kill reaches the workers too.
            self.process = subprocess.Popen(
                cli_command(*command),
                stdout=output,
                stderr=subprocess.STDOUT,
                env=cli_env(),
                process_group=0,
            )

    def wait_ready(self, seconds: float = START_SECONDS) -> None:
        """Wait until the ports are known, /readyz on the health port says every ledger
        answers, and the API port accepts connections."""
        deadline = time.monotonic() + seconds
        while not self._learn_ports():
            self._wait_or_fail(deadline, seconds)
        with httpx.Client(base_url=self.health_url, timeout=2) as probe:
            while not (self.ready(probe) and self._accepts_connections()):
                self._wait_or_fail(deadline, seconds)

    def ready(self, probe: httpx.Client | None = None) -> bool:
        """Whether /readyz answers 200 now."""
        try:
            if probe is not None:
                return probe.get("/readyz").status_code == 200
            return httpx.get(f"{self.health_url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """kill -9: no shutdown handler runs, in-flight requests and commits are cut off."""
        if self.process is None or not self.running:
            raise RuntimeError("the server is not running")
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> int:
        """SIGTERM and wait for the graceful shutdown; returns the exit code."""
        if self.process is None:
            raise RuntimeError("the server was never started")
        if self.running:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServeFailedError(
                f"no graceful stop within {STOP_SECONDS} s:\n{self.log_text()}"
            ) from None

    def restart(self, seconds: float = START_SECONDS) -> ServeProcess:
        """Start again on the same ports and ledger after a kill or a stop."""
        if self.running:
            self.kill()
        return self.start(seconds)

    def close(self) -> None:
        """Kill the server if it still runs and give up a reserved port."""
        if self.running:
            self.kill()
        if self._reserved_health is not None:
            self._reserved_health.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _learn_ports(self) -> bool:
        """Take the ports this start logged, where the system chose them; True once known."""
        if self._port is None or self._health_port is None:
            with self.log.open("rb") as output:
                output.seek(self._log_offset)
                logged = output.read().decode(errors="replace")
            if self._port is None and (line := API_PORT_LINE.search(logged)):
                self._port = int(line[1])
            if self._health_port is None and (line := HEALTH_PORT_LINE.search(logged)):
                self._health_port = int(line[1])
        return self._port is not None and self._health_port is not None

    def _accepts_connections(self) -> bool:
        # The health port opens in the app's lifespan, a moment before the API port listens.
        try:
            socket.create_connection((HOST, self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def _wait_or_fail(self, deadline: float, seconds: float) -> None:
        if self.process is None or not self.running:
            code = None if self.process is None else self.process.returncode
            raise ServeFailedError(f"the server exited with code {code}:\n{self.log_text()}")
        if time.monotonic() > deadline:
            raise ServeFailedError(
                f"the server was not ready within {seconds} s:\n{self.log_text()}"
            )
        time.sleep(POLL_SECONDS)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def cli_command(*args: str) -> list[str]:
    """`healthledger ARGS` run by this interpreter."""
    return [sys.executable, "-m", "api.cli", *args]


def cli_env() -> dict[str, str]:
    """This environment without HEALTHLEDGER_* settings, so only the given flags count."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HEALTHLEDGER_")}


def verify_ledger(network_dir: Path, ledger_url: str) -> subprocess.CompletedProcess[str]:
    """Run `healthledger verify --network DIR --ledger URL`: exit code and output."""
    return subprocess.run(
        cli_command("verify", "--network", str(network_dir), "--ledger", ledger_url),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=CLI_SECONDS,
        check=False,
    )
