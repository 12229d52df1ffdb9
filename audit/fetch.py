"""Fetch an image or video URL, or POST a callback, without letting either reach internal
services (SSRF guard).

How the guard works, per hop (the first URL and every redirect; a POST has one hop only):

1. The URL must be http(s) with a host and no ``user:pass@``.
2. The host is resolved once with getaddrinfo; every address must be public (or inside
   ``allowed_networks``), otherwise nothing is connected to at all.
3. The socket is connected to one of those vetted addresses, never to the host name, so a DNS
   answer that changes between the check and the connect (DNS rebinding) cannot redirect us.
   ``getpeername()`` is checked again after connecting, as a second line of defence.
4. The request carries the original Host header and, for https, TLS uses the original host
   name for SNI and certificate verification.

Redirects are followed by hand, so each hop goes through the same steps. One deadline covers
the whole fetch, and a size cap stops reading as soon as the body is too large.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3.exceptions
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.response import HTTPResponse
from urllib3.util import Url, parse_url
from urllib3.util.ssl_match_hostname import CertificateError

USER_AGENT = "ModerationConsole/1 (+fetch)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK_SIZE = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Special-purpose ranges that some Python versions still report as global.
_ALWAYS_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT (shared address space)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "240.0.0.0/4",  # reserved, includes broadcast
        "64:ff9b:1::/48",  # local-use NAT64: may translate to anything
        "fec0::/10",  # deprecated site-local
        "3fff::/20",  # documentation (RFC 9637)
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class FetchError(Exception):
    """A fetch failed. ``code`` is machine-readable, ``transient`` says whether to retry."""

    def __init__(self, code: str, message: str, *, transient: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = transient

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Fetched:
    content: bytes
    content_type: str
    final_url: str


def _timed_out() -> FetchError:
    return FetchError("timeout", "timed out fetching the URL", transient=True)


# --- Address policy -------------------------------------------------------------------------


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address really leads to (mapped, 6to4 or NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True if ``ip`` is a globally routable unicast address, safe to fetch from."""
    if ip.version == 6:
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
    if any(ip in net for net in _ALWAYS_BLOCKED):
        return False
    # is_global alone misses multicast and a few others on older Pythons, so be explicit.
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _ensure_allowed(ip: IPAddress, allowed_networks: Sequence[Network]) -> None:
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # the same host: let an allowed IPv4 network match it
    if any(ip in net for net in allowed_networks) or is_public_address(ip):
        return
    raise FetchError("blocked_address", f"refusing to connect to {ip}: not a public address")


# --- URLs and name resolution ---------------------------------------------------------------


def _parse_url(url: str) -> Url:
    # Backslashes, whitespace and control characters are parsed differently by different
    # URL parsers; nothing legitimate needs them raw, so refuse rather than guess.
    if any(ch == "\\" or ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url):
        raise FetchError("invalid_url", "URL contains whitespace, control characters or '\\'")
    try:
        parsed = parse_url(url)
        has_userinfo = parsed.auth is not None or "@" in urlsplit(url).netloc  # also "http://@x"
    except ValueError as exc:  # includes urllib3's LocationParseError
        raise FetchError("invalid_url", f"malformed URL: {exc}") from exc
    if parsed.scheme not in DEFAULT_PORTS:
        raise FetchError("invalid_url", "only http and https URLs are allowed")
    if has_userinfo:
        raise FetchError("invalid_url", "URLs with user:password@ are not allowed")
    if not parsed.host or parsed.port == 0:
        raise FetchError("invalid_url", "URL has no valid host")
    return parsed


def _resolve(host: str, port: int, allowed_networks: Sequence[Network]) -> list[tuple[int, tuple]]:
    """Resolve ``host`` once; return (family, sockaddr) pairs, all of them vetted."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise FetchError("dns", f"could not resolve {host}: {exc}", transient=True) from exc
    targets = [(fam, addr) for fam, *_, addr in infos if fam in (socket.AF_INET, socket.AF_INET6)]
    if not targets:
        raise FetchError("dns", f"{host} has no IPv4 or IPv6 address", transient=True)
    # Refuse if ANY answer is internal: a resolver mixing public and private answers is hostile.
    for _, sockaddr in targets:
        _ensure_allowed(ipaddress.ip_address(sockaddr[0]), allowed_networks)
    return targets


# --- Deadline -------------------------------------------------------------------------------


class _Deadline:
    """One wall-clock budget for the whole fetch: all hops, connect, TLS and reading.

    Socket timeouts only bound each recv(), so a server dripping a byte at a time could hold
    a worker forever. A timer thread therefore shuts the current socket down when time is up;
    the blocked read then fails and is reported as a timeout.
    """

    def __init__(self, seconds: float):
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        with self._lock:
            self._forget()

    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise _timed_out()
        return left

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._forget()
            # A duplicate descriptor still reaches the connection after TLS wrapping has
            # detached ``sock``, and shutdown() acts on the connection, not the descriptor.
            self._sock = sock.dup()
        if self.expired():
            self._expire()

    def _expire(self) -> None:
        with self._lock:
            if self._sock is not None:
                with suppress(OSError):  # already closed
                    self._sock.shutdown(socket.SHUT_RDWR)

    def _forget(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# --- Pinned connections ---------------------------------------------------------------------


class _PinnedMixin:
    """An urllib3 connection that connects to pre-vetted addresses instead of resolving.

    ``host`` stays the original host name, so urllib3 still uses it for SNI and certificate
    verification; only the socket's destination is pinned.
    """

    def __init__(
        self,
        *args,
        targets: list[tuple[int, tuple]],
        allowed_networks: Sequence[Network],
        deadline: _Deadline,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self._targets = targets
        self._allowed_networks = allowed_networks
        self._deadline = deadline

    def _new_conn(self) -> socket.socket:
        error: OSError | None = None
        for family, sockaddr in self._targets:  # like create_connection: try each address
            timeout = self._deadline.remaining()
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(sockaddr)
                # Belt and braces: vet the address we are actually connected to.
                peer = ipaddress.ip_address(sock.getpeername()[0])
                _ensure_allowed(peer, self._allowed_networks)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._deadline.watch(sock)
            return sock
        assert error is not None  # _resolve never returns an empty list
        raise error


class _PinnedHTTPConnection(_PinnedMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedMixin, HTTPSConnection):
    pass


@contextmanager
def _network_errors(deadline: _Deadline):
    """Translate socket/TLS/HTTP exceptions into FetchError."""
    try:
        yield
    except FetchError:
        raise
    except (ssl.SSLCertVerificationError, CertificateError) as exc:
        if deadline.expired():
            raise _timed_out() from exc
        # A bad certificate will not fix itself on retry.
        raise FetchError("connection", f"TLS error: {exc}") from exc
    except (TimeoutError, urllib3.exceptions.TimeoutError) as exc:
        raise _timed_out() from exc
    except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as exc:
        if deadline.expired():  # the watchdog shut the socket down
            raise _timed_out() from exc
        raise FetchError("connection", f"connection failed: {exc}", transient=True) from exc


# --- Fetching -------------------------------------------------------------------------------


def _send(
    url: Url,
    *,
    deadline: _Deadline,
    allowed_networks: Sequence[Network],
    headers: dict[str, str],
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[HTTPConnection, HTTPResponse]:
    """Do one request on a fresh pinned connection; the caller closes the connection."""
    host = url.host.strip("[]")
    port = url.port or DEFAULT_PORTS[url.scheme]
    targets = _resolve(host, port, allowed_networks)
    cls = _PinnedHTTPSConnection if url.scheme == "https" else _PinnedHTTPConnection
    conn = cls(
        host,
        port,
        timeout=deadline.remaining(),
        targets=targets,
        allowed_networks=allowed_networks,
        deadline=deadline,
    )
    headers = {
        "Host": url.netloc,
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",  # no gzip: the size cap must apply to real bytes
        "Connection": "close",
        **headers,
    }
    try:
        with _network_errors(deadline):
            conn.request(
                method,
                url.request_uri,
                body=body,
                headers=headers,
                preload_content=False,
                decode_content=False,
            )
            conn.timeout = deadline.remaining()
            response = conn.getresponse()
        if deadline.expired():  # headers cut short by the watchdog are not real headers
            response.close()
            raise _timed_out()
        return conn, response
    except BaseException:
        conn.close()
        raise


def _next_url(current: Url, response: HTTPResponse) -> Url:
    location = response.headers.get("Location")
    if not location:
        raise FetchError("bad_status", f"HTTP {response.status} redirect without a Location")
    return _parse_url(urljoin(current.url, location.strip()))


def _check_response(response: HTTPResponse, allowed_types: frozenset[str]) -> str:
    """Validate status and headers before reading the body; return the media type."""
    status = response.status
    if not 200 <= status < 300:
        transient = status >= 500 or status == 429
        raise FetchError("bad_status", f"server answered HTTP {status}", transient=transient)
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type not in allowed_types:
        raise FetchError("bad_content_type", f"content type {media_type or '(none)'!r} not allowed")
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchError("bad_content_type", f"unsupported Content-Encoding {encoding!r}")
    return media_type


def _read_body(response: HTTPResponse, *, max_bytes: int, deadline: _Deadline) -> bytes:
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("too_large", f"response is {declared} bytes, limit is {max_bytes}")
    body = bytearray()
    with _network_errors(deadline):
        # read1 returns after a single recv(), so the size check runs as data arrives.
        while chunk := response.read1(_CHUNK_SIZE):
            body += chunk
            if len(body) > max_bytes:
                raise FetchError("too_large", f"response exceeds the {max_bytes}-byte limit")
    if deadline.expired():  # an end-of-body caused by the watchdog is not a real end
        raise _timed_out()
    return bytes(body)


def fetch_url(
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    allowed_content_types: Iterable[str],
    max_redirects: int = 3,
    allowed_networks: Sequence[Network] = (),
) -> Fetched:
    """GET ``url`` (following up to ``max_redirects`` redirects), refusing internal addresses.

    Raises FetchError; see the module docstring for the guarantees.
    """
    allowed_types = frozenset(t.lower() for t in allowed_content_types)
    accept = ", ".join(sorted(allowed_types)) or "*/*"
    current = _parse_url(url)
    with _Deadline(timeout) as deadline:
        for _ in range(max_redirects + 1):
            conn, response = _send(
                current,
                deadline=deadline,
                allowed_networks=allowed_networks,
                headers={"Accept": accept},
            )
            try:
                if response.status in REDIRECT_STATUSES:
                    current = _next_url(current, response)
                    continue
                media_type = _check_response(response, allowed_types)
                content = _read_body(response, max_bytes=max_bytes, deadline=deadline)
                return Fetched(content=content, content_type=media_type, final_url=current.url)
            finally:
                response.close()
                conn.close()
    raise FetchError("too_many_redirects", f"more than {max_redirects} redirects")


@dataclass(frozen=True)
class Posted:
    status: int
    content: bytes


def post_url(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    max_response_bytes: int,
    allowed_networks: Sequence[Network] = (),
) -> Posted:
    """POST ``body`` to ``url`` under the same guards as fetch_url; returns any status.

    Redirects are not followed: a POST would have to be replayed to an address the client
    chose after the fact, so a 3xx comes back to the caller like any other status.
    """
    current = _parse_url(url)
    headers = {**headers, "Content-Length": str(len(body))}
    with _Deadline(timeout) as deadline:
        conn, response = _send(
            current,
            deadline=deadline,
            allowed_networks=allowed_networks,
            headers=headers,
            method="POST",
            body=body,
        )
        try:
            content = _read_body(response, max_bytes=max_response_bytes, deadline=deadline)
            return Posted(status=response.status, content=content)
        finally:
            response.close()
            conn.close()


def url_check(url: str, *, allowed_networks: Sequence[Network] = ()) -> None:
    """Raise FetchError for a URL that could never be fetched or posted to: a bad shape, or an
    internal IP address written in it. Host names are only resolved when used (DNS changes)."""
    parsed = _parse_url(url)
    with suppress(ValueError):  # a host name, not an address
        _ensure_allowed(ipaddress.ip_address(parsed.host.strip("[]")), allowed_networks)
