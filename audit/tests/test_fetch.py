"""audit.fetch against real HTTP(S) servers on loopback.

No network traffic leaves the machine: an autouse guard refuses every connect() to a
non-loopback address and records it, so tests can assert the fetcher never even tried.
"""

import io
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from audit import fetch
from audit.fetch import FetchError, fetch_url

LOOPBACK_1 = [ipaddress.ip_network("127.0.0.1/32")]
IMAGE_TYPES = ("image/png", "image/jpeg")


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), "red").save(out, "PNG")
    return out.getvalue()


PNG = _png()


# --- Test servers ---------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # needed for chunked responses
    server: "Server"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        self.server.requests.append((self.path, dict(self.headers)))
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        route = getattr(self, "route_" + url.path.strip("/").split("/")[0].replace("-", "_"), None)
        try:
            if route is None:
                self.reply(404, b"not found", "text/plain")
            else:
                route(url.path, query)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose (size or time limit)

    def reply(self, status, body=b"", ctype="image/png", headers=()):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def route_img(self, path, query):
        ctype = query.get("type", "image/png")
        self.reply(200, PNG, None if ctype == "none" else ctype)

    def route_redirect(self, path, query):
        headers = [("Location", query["to"])] if "to" in query else []
        if "cookie" in query:
            headers.append(("Set-Cookie", "session=secret; Path=/"))
        self.reply(int(query.get("status", 302)), b"", "text/plain", headers)

    def route_chain(self, path, query):
        hops = int(path.rsplit("/", 1)[1])
        if hops == 0:
            self.reply(200, PNG)
        else:
            self.reply(302, b"", "text/plain", [("Location", f"/chain/{hops - 1}")])

    def route_status(self, path, query):
        self.reply(int(path.rsplit("/", 1)[1]), b"error", "text/plain")

    def route_echo(self, path, query):
        body = json.dumps(dict(self.headers)).encode()
        self.reply(200, body, "application/json")

    def route_gzip(self, path, query):
        self.reply(200, PNG, "image/png", [("Content-Encoding", "gzip")])

    def route_sized(self, path, query):
        self.reply(200, bytes(int(query["n"])), "image/png")

    def route_big_declared(self, path, query):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(10_000_000))
        self.end_headers()
        self.wfile.write(bytes(1000))  # the client must not wait for the rest

    def route_big_chunked(self, path, query):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = bytes(16 * 1024)
        for _ in range(640):  # 10 MiB unless the client hangs up first
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def route_slow(self, path, query):
        self.server.stopping.wait(3)
        self.reply(200, PNG)

    def route_drip(self, path, query):
        """Headers at once, then one body byte every 0.1 s: each recv() is quick."""
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "100")
        self.end_headers()
        for _ in range(100):
            if self.server.stopping.wait(0.1):
                return
            self.wfile.write(b"x")

    def route_drip_headers(self, path, query):
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(100):
            if self.server.stopping.wait(0.1):
                return
            self.wfile.write(b"x")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host="127.0.0.1", ssl_context=None):
        super().__init__((host, 0), Handler)
        self.requests: list[tuple[str, dict]] = []
        self.stopping = threading.Event()
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


def _serve(server: Server) -> Iterator[Server]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from _serve(Server())


@pytest.fixture(autouse=True)
def _fresh_requests(server):
    server.requests.clear()


@pytest.fixture
def canary() -> Iterator[socket.socket]:
    """A listener on 127.0.0.2 (loopback, but outside LOOPBACK_1) that must never be reached.

    A completed TCP handshake sits in the backlog even without accept(), so a non-blocking
    accept() tells whether anything connected.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.2", 0))
    sock.listen()
    sock.setblocking(False)
    yield sock
    sock.close()


def assert_untouched(canary: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        canary.accept()


@pytest.fixture(autouse=True)
def connect_guard(monkeypatch) -> list[str]:
    """Refuse (and record) any connect() to a non-loopback address: the sandbox forbids such
    traffic, and for the SSRF tests a recorded attempt means the guard checked too late."""
    attempted: list[str] = []
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        inet = sock.family in (socket.AF_INET, socket.AF_INET6)
        if inet and not ipaddress.ip_address(address[0]).is_loopback:
            attempted.append(address[0])
            raise ConnectionRefusedError(f"test guard: no traffic to {address[0]}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return attempted


class FakeDNS:
    """getaddrinfo answers for chosen names: ``dns[name] = [answer, answer, ...]``, one answer
    per call, the last one repeating. An answer is a list of IPs or an exception to raise.
    Other names go to the real resolver."""

    def __init__(self):
        self.answers: dict[str, list] = {}
        self.calls: list[str] = []
        self._real = socket.getaddrinfo

    def __setitem__(self, host: str, answers: list) -> None:
        self.answers[host] = list(answers)

    def getaddrinfo(self, host, port, *args, **kwargs):
        if host not in self.answers:
            return self._real(host, port, *args, **kwargs)
        self.calls.append(host)
        queue = self.answers[host]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
            if ":" in ip
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in answer
        ]


@pytest.fixture
def fake_dns(monkeypatch) -> FakeDNS:
    dns = FakeDNS()
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    return dns


def get(url, **kwargs):
    kwargs.setdefault("max_bytes", 1_000_000)
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("allowed_content_types", IMAGE_TYPES)
    return fetch_url(url, **kwargs)


def fetch_error(url, **kwargs) -> FetchError:
    with pytest.raises(FetchError) as info:
        get(url, **kwargs)
    return info.value


# --- Address policy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, public",
    [
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("127.0.0.1", False),
        ("0.0.0.0", False),  # noqa: S104
        ("224.0.0.1", False),  # multicast: is_global is True on some Pythons
        ("255.255.255.255", False),
        ("192.0.0.8", False),
        ("198.18.0.1", False),
        ("240.0.0.1", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fec0::1", False),  # site-local
        ("ff02::1", False),  # multicast
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:10.0.0.1", False),
        ("::7f00:1", False),  # IPv4-compatible
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::1", False),  # local-use NAT64
        ("2001:db8::1", False),  # documentation
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8 (IPv6-only networks)
    ],
)
def test_address_classifier(address, public):
    assert fetch.is_public_address(ipaddress.ip_address(address)) is public


# --- Happy paths ----------------------------------------------------------------------------


def test_loopback_refused_by_default(server, connect_guard):
    error = fetch_error(server.url("/img"))
    assert error.code == "blocked_address"
    assert not error.transient
    assert server.requests == []


def test_fetches_from_allowed_network(server):
    result = get(server.url("/img"), allowed_networks=[ipaddress.ip_network("127.0.0.0/8")])
    assert result == fetch.Fetched(PNG, "image/png", server.url("/img"))


def test_content_type_is_media_type_only_and_lowercased(server):
    result = get(server.url("/img?type=Image/PNG;%20charset=binary"), allowed_networks=LOOPBACK_1)
    assert result.content_type == "image/png"


def test_request_headers(server):
    result = get(
        server.url("/echo"),
        allowed_networks=LOOPBACK_1,
        allowed_content_types=["application/json"],
    )
    headers = json.loads(result.content)
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert headers["User-Agent"] == "ModerationConsole/1 (+fetch)"
    assert headers["Accept-Encoding"] == "identity"
    assert headers["Accept"] == "application/json"


def test_cookies_are_not_kept_across_redirects(server):
    result = get(
        server.url("/redirect?cookie=1&to=/echo"),
        allowed_networks=LOOPBACK_1,
        allowed_content_types=["application/json"],
    )
    assert "Cookie" not in json.loads(result.content)


def test_proxy_environment_is_ignored(server, canary, monkeypatch):
    proxy = f"http://127.0.0.2:{canary.getsockname()[1]}"
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    assert get(server.url("/img"), allowed_networks=LOOPBACK_1).content == PNG
    assert_untouched(canary)


# --- Redirects ------------------------------------------------------------------------------


def test_relative_redirect_is_followed(server):
    result = get(server.url("/redirect?to=img%3Ftype%3Dimage/jpeg"), allowed_networks=LOOPBACK_1)
    assert result.final_url == server.url("/img?type=image/jpeg")
    assert result.content_type == "image/jpeg"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_statuses(server, status):
    result = get(server.url(f"/redirect?status={status}&to=/img"), allowed_networks=LOOPBACK_1)
    assert result.final_url == server.url("/img")


def test_redirect_to_other_loopback_address_is_refused(server, canary):
    target = f"http://127.0.0.2:{canary.getsockname()[1]}/img"
    error = fetch_error(server.url(f"/redirect?to={target}"), allowed_networks=LOOPBACK_1)
    assert error.code == "blocked_address"
    assert_untouched(canary)


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1:8080/",
        "http://[::1]:{port}/img",
        "http://[::ffff:10.0.0.1]/",
        "http://[fe80::1]/",
        "http://0.0.0.0:{port}/img",
        "http://2130706434:{port}/img",  # 127.0.0.2 as a decimal number
        "http://0x7f.2:{port}/img",  # 127.0.0.2 in inet_aton shorthand
        "https://100.64.0.1/",
    ],
)
def test_redirect_to_internal_address_is_refused_before_connecting(server, connect_guard, target):
    target = target.format(port=server.port)
    error = fetch_error(server.url(f"/redirect?to={target}"), allowed_networks=LOOPBACK_1)
    assert error.code == "blocked_address"
    assert connect_guard == []
    assert len(server.requests) == 1  # just the redirect


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://x/"])
def test_redirect_to_other_scheme_is_refused(server, target):
    error = fetch_error(server.url(f"/redirect?to={target}"), allowed_networks=LOOPBACK_1)
    assert error.code == "invalid_url"


def test_redirect_limit(server):
    assert get(server.url("/chain/3"), allowed_networks=LOOPBACK_1, max_redirects=3).content == PNG
    server.requests.clear()
    error = fetch_error(server.url("/chain/4"), allowed_networks=LOOPBACK_1, max_redirects=3)
    assert error.code == "too_many_redirects"
    assert len(server.requests) == 4  # the fifth URL is never requested


def test_no_redirects_allowed(server):
    error = fetch_error(server.url("/chain/1"), allowed_networks=LOOPBACK_1, max_redirects=0)
    assert error.code == "too_many_redirects"


def test_redirect_without_location(server):
    error = fetch_error(server.url("/redirect"), allowed_networks=LOOPBACK_1)
    assert error.code == "bad_status"


# --- DNS ------------------------------------------------------------------------------------


def test_connects_to_the_vetted_address_when_dns_changes(server, canary, fake_dns):
    """DNS rebinding: the name passes the check as 127.0.0.1 (allowed), then would point at
    127.0.0.2 (not allowed). The connection must go to the address that was checked."""
    fake_dns["media.example"] = [["127.0.0.1"], ["127.0.0.2"]]
    url = f"http://media.example:{server.port}/img"
    result = get(url, allowed_networks=LOOPBACK_1)
    assert result.content == PNG
    assert fake_dns.calls == ["media.example"]  # resolved once, then pinned
    assert server.requests[0][1]["Host"] == f"media.example:{server.port}"
    assert_untouched(canary)


def test_public_then_internal_answer_never_reaches_internal(server, fake_dns, connect_guard):
    """First answer public, second loopback: the fetcher dials the public address it vetted
    (refused by the test guard) and never the loopback server."""
    fake_dns["rebind.example"] = [["93.184.215.14"], ["127.0.0.1"]]
    error = fetch_error(f"http://rebind.example:{server.port}/img")
    assert error.code == "connection"
    assert error.transient
    assert connect_guard == ["93.184.215.14"]
    assert server.requests == []


def test_any_internal_answer_blocks_the_host(server, fake_dns, connect_guard):
    fake_dns["mixed.example"] = [["93.184.215.14", "10.0.0.1"]]
    error = fetch_error(f"http://mixed.example:{server.port}/img")
    assert error.code == "blocked_address"
    assert connect_guard == []


def test_dns_failure_is_transient(fake_dns):
    fake_dns["missing.example"] = [socket.gaierror(socket.EAI_NONAME, "Name or service not known")]
    error = fetch_error("http://missing.example/img")
    assert (error.code, error.transient) == ("dns", True)


def test_connected_peer_is_checked_again(server):
    """Second line of defence: even a connection pinned to an unvetted address is refused
    once getpeername() shows where it landed."""
    with fetch._Deadline(5) as deadline:
        conn = fetch._PinnedHTTPConnection(
            "media.example",
            server.port,
            targets=[(socket.AF_INET, ("127.0.0.1", server.port))],
            allowed_networks=(),
            deadline=deadline,
        )
        with pytest.raises(FetchError) as info:
            conn.connect()
    assert info.value.code == "blocked_address"
    assert server.requests == []


# --- Limits ---------------------------------------------------------------------------------


def test_body_at_the_limit_is_accepted(server):
    assert (
        len(get(server.url("/sized?n=1000"), allowed_networks=LOOPBACK_1, max_bytes=1000).content)
        == 1000
    )


def test_too_large_by_content_length(server):
    started = time.monotonic()
    error = fetch_error(server.url("/big-declared"), allowed_networks=LOOPBACK_1, max_bytes=5000)
    assert error.code == "too_large"
    assert time.monotonic() - started < 1


def test_too_large_chunked_body(server):
    error = fetch_error(server.url("/big-chunked"), allowed_networks=LOOPBACK_1, max_bytes=100_000)
    assert error.code == "too_large"
    assert not error.transient


@pytest.mark.parametrize("path", ["/slow", "/drip", "/drip-headers"])
def test_total_timeout(server, path):
    """Also when each recv() is fast but the response never ends (slow-loris)."""
    started = time.monotonic()
    error = fetch_error(server.url(path), allowed_networks=LOOPBACK_1, timeout=0.5)
    elapsed = time.monotonic() - started
    assert (error.code, error.transient) == ("timeout", True)
    assert 0.4 < elapsed < 1.5


def test_connection_refused_is_transient():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    error = fetch_error(f"http://127.0.0.1:{port}/", allowed_networks=LOOPBACK_1)
    assert (error.code, error.transient) == ("connection", True)


# --- Responses ------------------------------------------------------------------------------


@pytest.mark.parametrize("ctype", ["text/html", "image/svg+xml", "none"])
def test_bad_content_type(server, ctype):
    error = fetch_error(server.url(f"/img?type={ctype}"), allowed_networks=LOOPBACK_1)
    assert error.code == "bad_content_type"


def test_compressed_body_is_refused(server):
    error = fetch_error(server.url("/gzip"), allowed_networks=LOOPBACK_1)
    assert error.code == "bad_content_type"


@pytest.mark.parametrize(
    "status, transient", [(404, False), (403, False), (304, False), (429, True), (503, True)]
)
def test_bad_status(server, status, transient):
    error = fetch_error(server.url(f"/status/{status}"), allowed_networks=LOOPBACK_1)
    assert (error.code, error.transient) == ("bad_status", transient)
    assert str(status) in str(error)


# --- URL validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x.png",
        "gopher://127.0.0.1:70/_GET",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "//127.0.0.1/img",
        "img.png",
        "",
        "http:///img",
        "http://user:pass@127.0.0.1/img",
        "http://user@127.0.0.1/img",
        "http://@127.0.0.1/img",
        "http://127.0.0.1\\@example.com/",
        "http://exa mple.com/",
        "http://example.com/\r\nX-Injected: 1",
        "http://127.0.0.1:0/",
        "http://127.0.0.1:99999/",
    ],
)
def test_invalid_urls(url, connect_guard):
    error = fetch_error(url, allowed_networks=LOOPBACK_1)
    assert error.code == "invalid_url"
    assert not error.transient
    assert connect_guard == []


def test_fetch_error_attributes():
    error = FetchError("timeout", "took too long", transient=True)
    assert (error.code, error.message, error.transient, str(error)) == (
        "timeout",
        "took too long",
        True,
        "took too long",
    )


# --- HTTPS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[Server]:
    """An HTTPS server with a self-signed certificate for media.example only."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=media.example",
         "-addext", "subjectAltName=DNS:media.example",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server_names: list[str] = []
    context.sni_callback = lambda sslsock, name, ctx: server_names.append(name)
    server = Server(ssl_context=context)
    server.cert_path = cert
    server.server_names = server_names
    yield from _serve(server)


@pytest.fixture
def trust_test_cert(tls_server, monkeypatch):
    # OpenSSL reads SSL_CERT_FILE when loading the default trust store: the fetcher's
    # verification is exercised as in production, just with our certificate as the only CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.cert_path))


def test_https_verifies_and_sends_sni_for_the_original_host(tls_server, trust_test_cert, fake_dns):
    fake_dns["media.example"] = [["127.0.0.1"]]
    tls_server.server_names.clear()
    result = get(
        tls_server.url("/img", host="media.example", scheme="https"), allowed_networks=LOOPBACK_1
    )
    assert result.content == PNG
    assert tls_server.server_names == ["media.example"]


def test_https_certificate_for_another_name_is_refused(tls_server, trust_test_cert, fake_dns):
    fake_dns["other.example"] = [["127.0.0.1"]]
    tls_server.requests.clear()
    url = tls_server.url("/img", host="other.example", scheme="https")
    error = fetch_error(url, allowed_networks=LOOPBACK_1)
    assert (error.code, error.transient) == ("connection", False)
    assert tls_server.requests == []


def test_https_untrusted_certificate_is_refused(tls_server, fake_dns):
    fake_dns["media.example"] = [["127.0.0.1"]]
    url = tls_server.url("/img", host="media.example", scheme="https")
    error = fetch_error(url, allowed_networks=LOOPBACK_1)
    assert (error.code, error.transient) == ("connection", False)
