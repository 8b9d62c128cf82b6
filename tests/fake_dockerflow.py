"""A fake Dockerflow service on 127.0.0.1: /__version__, /__heartbeat__, /__lbheartbeat__.

Follows the Dockerflow conventions Socorro serves (see socorro.md section 8): `/__version__` is the
JSON version object baked into the image (`commit`, `version`, `source`, `build`; `{}` when the
file is missing); `/__heartbeat__` is 200 `{"ok": true}` or 500 with the failing checks.

Test hooks (not part of Dockerflow): switch the served commit now or after N version requests,
inject faults (HTTP status, non-JSON body, dropped connection, delay) for the next requests, and a
journal of every request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Fault:
    """What the next matching request gets instead of the normal answer."""

    path: str  # "/__version__", "/__heartbeat__" or "*"
    status: int = 500
    body: str = "Internal Server Error"
    drop: bool = False  # close the connection without an answer
    delay: float = 0.0


@dataclass
class DockerflowState:
    commit: str = ""
    version: str = ""
    source: str = "https://github.com/mozilla-services/socorro"
    healthy: bool = True
    missing_version_file: bool = False
    # (after this many /__version__ requests, serve this commit and version)
    switch_after: tuple[int, str, str] | None = None
    faults: list[Fault] = field(default_factory=list)
    journal: list[tuple[str, str]] = field(default_factory=list)
    version_requests: int = 0


class FakeDockerflow:
    """A running server; `url` is its base (no trailing slash)."""

    def __init__(self) -> None:
        self.state = DockerflowState()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval keeps shutdown() (and so each test's teardown) fast.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    # -- test hooks -------------------------------------------------------------------------
    def serve(self, commit: str, version: str = "") -> None:
        with self.lock:
            self.state.commit, self.state.version = commit, version
            self.state.missing_version_file = False

    def serve_after(self, requests: int, commit: str, version: str = "") -> None:
        """Start serving `commit` once `requests` more /__version__ requests were answered."""
        with self.lock:
            self.state.switch_after = (self.state.version_requests + requests, commit, version)

    def fail_next(self, count: int = 1, **fault: object) -> None:
        with self.lock:
            self.state.faults.extend(Fault(**fault) for _ in range(count))  # type: ignore[arg-type]

    def requests(self, path: str | None = None) -> list[str]:
        with self.lock:
            return [p for _, p in self.state.journal if path is None or p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- server -----------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def _send(self, status: int, body: str, content_type: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                with fake.lock:
                    state = fake.state
                    state.journal.append(("GET", path))
                    fault = next((f for f in state.faults if f.path in (path, "*")), None)
                    if fault:
                        state.faults.remove(fault)
                    if path == "/__version__":
                        state.version_requests += 1
                        if state.switch_after and state.version_requests > state.switch_after[0]:
                            _, state.commit, state.version = state.switch_after
                            state.switch_after = None
                    version = {
                        "commit": state.commit,
                        "version": state.version,
                        "source": state.source,
                        "build": "https://github.com/mozilla-services/socorro/actions/runs/1",
                    }
                    missing = state.missing_version_file
                    healthy = state.healthy
                if fault:
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.drop:
                        self.close_connection = True
                        self.connection.close()
                        return
                    self._send(fault.status, fault.body, "text/plain")
                    return
                if path == "/__version__":
                    self._send(200, json.dumps({} if missing else version), "application/json")
                elif path == "/__heartbeat__":
                    if healthy:
                        self._send(200, json.dumps({"ok": True}), "application/json")
                    else:
                        body = {"ok": False, "checks": {"check_database": "error"}}
                        self._send(500, json.dumps(body), "application/json")
                elif path == "/__lbheartbeat__":
                    self._send(200, json.dumps({"ok": True}), "application/json")
                else:
                    self._send(404, "Not Found", "text/plain")

        return Handler


@pytest.fixture
def dockerflow() -> Iterator[FakeDockerflow]:
    """A fake prod host."""
    server = FakeDockerflow()
    yield server
    server.close()


@pytest.fixture
def dockerflow_stage() -> Iterator[FakeDockerflow]:
    """A fake stage host."""
    server = FakeDockerflow()
    yield server
    server.close()
