import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from audit.tests.processes import Workers, port_accepts, wait_for


class MediaServer:
    """A real HTTP server on 127.0.0.1 serving fixed bodies: path -> (content type, bytes);
    `statuses` answers a path with another status (a busy or failing server)."""

    def __init__(self):
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.statuses: dict[str, int] = {}
        routes, statuses = self.routes, self.statuses

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                content_type, body = routes.get(self.path, ("text/plain", b""))
                self.send_response(statuses.get(self.path, 200 if self.path in routes else 404))
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


class CallbackReceiver:
    """A real HTTP server on 127.0.0.1 that records each POST (path, headers, body) and
    answers with the next status of ``answers`` (200 once they run out)."""

    def __init__(self):
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((self.path, dict(self.headers), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                reply = b"ok" if status < 300 else b"receiver says no"
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def callback_receiver(settings):
    """Receives callbacks on loopback, and allows posting to it (refused by default)."""
    import ipaddress

    settings.FETCH_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.1/32")]
    server = CallbackReceiver()
    yield server
    server.close()


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run what would follow each commit (tasks, in-process) as a worker would."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of the test's own on a free port, to stop and start at will."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (Debian's redis-server package)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]

    class Server:
        url = f"redis://127.0.0.1:{port}/0"
        process = None

        def start(self):
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            assert wait_for(lambda: port_accepts(port), timeout=10)

        def stop(self):
            self.process.terminate()
            self.process.wait(10)

    server = Server()
    yield server
    if server.process and server.process.poll() is None:
        server.stop()


@pytest.fixture
def workers(tmp_path, own_redis):
    own_redis.start()
    workers = Workers(tmp_path, own_redis.url)
    try:
        yield workers
    finally:
        for process in workers.started:
            workers.kill(process)
