import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class MediaServer:
    """A real HTTP server on 127.0.0.1 serving fixed bodies: path -> (content type, bytes)."""

    def __init__(self):
        self.routes: dict[str, tuple[str, bytes]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                content_type, body = routes.get(self.path, ("text/plain", b""))
                self.send_response(200 if self.path in routes else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def media_server(settings):
    """Serves media on loopback, and allows fetching from it (refused by default)."""
    import ipaddress

    settings.FETCH_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.1/32")]
    server = MediaServer()
    yield server
    server.close()


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run what would follow each commit (tasks, in-process) as a worker would."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run
