"""The built web app (web/dist) and a server that serves it, for the web tests.

The app is built with npm when web/dist is missing (`make test` builds it first),
and served by a real `healthledger serve` subprocess over mutual TLS on a fresh
network with the demo users.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devkit.serve_process import ServeProcess
from tests.networks import NetworkFixture, make_network

WEB = Path(__file__).resolve().parent.parent / "web"
BUILD_SECONDS = 300


def built_web_app() -> Path:
    """web/dist, after `npm ci` and `npm run build` if it is not there yet."""
    dist = WEB / "dist"
    if not (dist / "index.html").is_file():
        npm = shutil.which("npm")
        assert npm, "npm is needed to build the web app (Node.js 20 and npm)"
        if not (WEB / "node_modules").is_dir():
            _run([npm, "ci", "--no-audit", "--no-fund"])
        _run([npm, "run", "build"])
    return dist


def _run(command: list[str]) -> None:
    done = subprocess.run(
        command, cwd=WEB, capture_output=True, text=True, timeout=BUILD_SECONDS, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


@contextmanager
def web_server(directory: Path) -> Iterator[tuple[NetworkFixture, ServeProcess]]:
    """A fresh network in `directory` and `healthledger serve` on it with the built app."""
    built_web_app()
    net = make_network(directory / "network")
    ledger = f"sqlite:///{directory / 'ledger.db'}"
    with ServeProcess(net.directory, ledger, directory / "serve.log") as server:
        server.start()
        yield net, server
        # uvicorn re-raises SIGTERM after its graceful shutdown.
        assert server.terminate() in (0, -signal.SIGTERM), server.log_text()
