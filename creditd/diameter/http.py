"""The HTTP endpoint of `creditd diameter` (`[diameter] metrics_listen`): Prometheus `/metrics`, and
`/health` for an orchestrator's readiness probe, the gRPC edge's health service in spirit: 200 `SERVING`
while the process listens and Redis answers; 503 `NOT_SERVING: <why>` while it starts, while Redis does
not answer (the circuit open: CCRs get 3004) and once it drains to stop. A Diameter port that accepts
TCP says nothing of this: a peer learns it only from a CER and a CCR.

It runs on threads of its own (as prometheus_client's server does), so a scrape or a probe never waits
for the event loop; the health it reports is read from the server's flags."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from creditd.errors import StartupError
from creditd.metrics import REGISTRY

# (serving, why not)
Health = Callable[[], tuple[bool, str]]
StartResponse = Callable[..., Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class' name
        """Probes every few seconds are no news: not logged."""


class HttpEndpoint:
    def __init__(self, listen: str, health: Health) -> None:
        host, _, port = listen.rpartition(":")
        self._host, self._port = host.strip("[]") or "127.0.0.1", port
        self._health = health
        self._metrics = make_wsgi_app(REGISTRY)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/health":
            return self._metrics(environ, start_response)  # type: ignore[no-any-return]
        serving, why = self._health()
        body = b"SERVING\n" if serving else f"NOT_SERVING: {why}\n".encode()
        status = "200 OK" if serving else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    def start(self) -> int:
        try:
            self._server = make_server(self._host, int(self._port), self._app, _Server, _QuietHandler)
        except (OSError, ValueError) as error:
            what = "is in use" if getattr(error, "errno", None) == errno.EADDRINUSE else f"cannot be bound: {error}"
            raise StartupError(f"diameter.metrics_listen: {self._host}:{self._port} {what}") from None
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="diameter-http", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
