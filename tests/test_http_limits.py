"""HTTP limits against a real server: slow or half-sent requests, connection counts, form bodies,
sign-in and join throttles, and which proxies may say who the client is."""

from __future__ import annotations

import re
import socket
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import (
    Server,
    add_slides,
    add_user,
    api_token,
    collab,
    connect_db,
    seed_case,
    start_server,
    stop_server,
    write_pyramid_tiff,
)

# Generous: the server's own deadlines are far shorter; this only stops a broken server hanging the run.
WAIT_S = 60.0


def _port(server: Server) -> int:
    port = urlsplit(server.url).port
    assert port is not None
    return port


def _socket(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", _port(server)), timeout=WAIT_S)


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails the test)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _read_answer(sock: socket.socket) -> bytes:
    """One whole answer that states its length, the connection left open."""
    received = b""
    while b"\r\n\r\n" not in received or len(received) < _answer_length(received):
        chunk = sock.recv(65536)
        assert chunk, f"closed without a whole answer after {received!r}"
        received += chunk
    return received


def _answer_length(received: bytes) -> int:
    head, _, _ = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert length, head
    return len(head) + 4 + int(length[1])


def _case_id(server: Server, token: str) -> str:
    worklist = httpx.get(f"{server.url}/api/worklist", headers={"Authorization": f"Bearer {token}"})
    return str(worklist.json()["cases"][0]["id"])


@pytest.fixture
def site(data_dir: Path) -> Iterator[Server]:
    """A case, its pathologist, and a server that trusts no proxy (the default)."""
    seed_case(data_dir)
    running = start_server(data_dir)
    yield running
    stop_server(running)


# -- slow and half-sent requests ------------------------------------------------------------


def test_half_sent_requests_are_closed_and_the_server_keeps_answering(site: Server) -> None:
    silent = [_socket(site) for _ in range(20)]  # connect, send nothing
    half = [_socket(site) for _ in range(20)]  # half a request head, then nothing
    for sock in half:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Wait: ")
    # A first request answered, then half of a second one on the same connection.
    kept_alive = [_socket(site) for _ in range(10)]
    for sock in kept_alive:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    assert site.get("/healthz").status_code == 200
    for sock in [*silent, *half, *kept_alive]:
        closing = _read_until_closed(sock)  # the server closes it: nothing left to wait for
        assert closing.startswith(b"HTTP/1.1 408") and b"connection: close" in closing.lower(), closing
        sock.close()
    assert site.get("/healthz").status_code == 200


def test_connections_past_the_limit_are_refused_and_served_again_once_below(data_dir: Path) -> None:
    seed_case(data_dir)
    token = api_token(data_dir, "north.path")
    with connect_db(data_dir) as db:
        case_id = db.execute("SELECT id FROM cases WHERE accession = 'S26-1'").fetchone()[0]
    server = start_server(data_dir, args=("--max-connections", "6"))
    try:
        url = server.url.replace("http://", "ws://") + f"/ws/cases/{case_id}"
        with ExitStack() as live:
            # Live connections count: websockets of a meeting hold theirs for hours.
            sockets = [
                live.enter_context(connect(url, additional_headers={"Authorization": f"Bearer {token}"}))
                for _ in range(6)
            ]
            refused = server.get("/healthz")
            assert refused.status_code == 503, refused.text
            assert "Too many connections" in refused.text
            assert int(refused.headers["retry-after"]) > 0
            sockets[0].close()
            deadline = time.monotonic() + WAIT_S
            while (status := server.get("/healthz").status_code) != 200 and time.monotonic() < deadline:
                assert status == 503
            assert status == 200
    finally:
        stop_server(server)


# -- form bodies ----------------------------------------------------------------------------


def _post_head(
    server: Server, path: str, content_type: str, length: int, cookie: str = "", token: str = ""
) -> bytes:
    """Send only the head of a big form post; the answer must come without the body."""
    extra = (f"Cookie: {cookie}\r\n" if cookie else "") + (
        f"Authorization: Bearer {token}\r\n" if token else ""
    )
    with _socket(server) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n".encode()
        )
        return _read_until_closed(sock)  # the refused body is never read: the server hangs up


def test_form_bodies_other_than_small_url_encoded_ones_are_refused_unread(site: Server) -> None:
    token = api_token(site.data_dir, "north.path")
    shares = f"/cases/{_case_id(site, token)}/shares"
    big = 8 << 20
    for path, auth in (("/login", ""), ("/join", ""), (shares, token)):
        multipart = _post_head(site, path, "multipart/form-data; boundary=x", big, token=auth)
        assert multipart.startswith(b"HTTP/1.1 415"), (path, multipart)
        assert b"application/x-www-form-urlencoded" in multipart
        oversized = _post_head(site, path, "application/x-www-form-urlencoded", big, token=auth)
        assert oversized.startswith(b"HTTP/1.1 413"), (path, oversized)
        assert b"too large" in oversized
    # No length given: the body is counted as it streams, and refused once past the limit.
    with _socket(site) as sock:
        sock.sendall(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"a=" + b"x" * 4094
        for _ in range(5):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 413")
    # Ordinary forms still work.
    page = httpx.get(f"{site.url}/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    signed = httpx.post(
        f"{site.url}/login",
        data={"username": "north.path", "password": "correct horse battery", "csrf": csrf[1]},
        cookies=page.cookies,
    )
    assert signed.status_code == 303, signed.text


# -- throttles ------------------------------------------------------------------------------


def test_the_sign_in_throttle_keeps_bounded_memory_and_still_stops_an_address() -> None:
    from collab.throttle import MAX_KEYS
    from collab.web.auth import MAX_FAILURES, LoginThrottle

    throttle = LoginThrottle()
    for _ in range(MAX_FAILURES):
        throttle.failed("north.path", "192.0.2.1")
    assert throttle.blocked_for("anyone", "192.0.2.1") > 0
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(100_000):
            username = f"guess-{number:06d}"
            throttle.blocked_for(username, f"198.51.{number % 200}.{number % 250}")
            throttle.failed(username, f"198.51.{number % 200}.{number % 250}")
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 16 << 20, f"{grown / (1 << 20):.1f} MiB held after 100,000 usernames"
    assert len(throttle) <= 2 * MAX_KEYS  # usernames and addresses
    assert throttle.blocked_for("anyone", "192.0.2.1") > 0  # the spray did not free the address


def _join_form(client: httpx.Client) -> str:
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/join").text)
    assert csrf
    return csrf[1]


def test_join_code_guesses_are_throttled_and_audited(data_dir: Path) -> None:
    from collab.throttle import JOIN_ADDRESS_FAILURES, JOIN_SITE_FAILURES

    seed_case(data_dir)
    add_user(data_dir, "admin", "admin", "North Trust")
    add_slides(data_dir, write_pyramid_tiff(data_dir / "slide.tiff", 600, 400, levels=2))
    made = collab(
        "teaching", "add", "Year 3", "--educator", "north.path", "--case", "S26-1", data_dir=data_dir
    )
    assert made.returncode == 0, made.stderr
    code = made.stdout.split("\t")[0]
    wrong = "22222" + ("3" if code != "222223" else "4")
    server = start_server(data_dir, args=("--trusted-proxy", "127.0.0.1"))
    try:

        def guest(address: str) -> httpx.Client:
            return httpx.Client(base_url=server.url, timeout=30, headers={"X-Forwarded-For": address})

        with guest("198.51.100.1") as guesser:
            csrf = _join_form(guesser)
            for _ in range(JOIN_ADDRESS_FAILURES):
                assert (
                    guesser.post("/join", data={"code": wrong, "name": "Eve", "csrf": csrf}).status_code
                    == 404
                )
            blocked = guesser.post("/join", data={"code": code, "name": "Eve", "csrf": csrf})
            assert blocked.status_code == 429, blocked.text
            assert int(blocked.headers["retry-after"]) > 0
            assert "Too many wrong codes" in blocked.text
        with guest("198.51.100.2") as student:  # another address is not held up
            joined = student.post("/join", data={"code": code, "name": "Ann", "csrf": _join_form(student)})
            assert joined.status_code == 303
        # Many addresses, a few guesses each: the site's own limit stops them all.
        for number in range(JOIN_SITE_FAILURES - JOIN_ADDRESS_FAILURES):
            with guest(f"203.0.113.{number % 250}") as other:
                answer = other.post("/join", data={"code": wrong, "name": "Eve", "csrf": _join_form(other)})
                assert answer.status_code == 404, (number, answer.status_code)
        with guest("192.0.2.77") as late:
            assert (
                late.post("/join", data={"code": code, "name": "Bo", "csrf": _join_form(late)}).status_code
                == 429
            )
        token = api_token(data_dir, "admin")
        entries = httpx.get(
            f"{server.url}/api/audit",
            params={"event": "teaching join failed"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["entries"]
        by_address = [e for e in entries if e["client"] == "198.51.100.1"]
        assert len(by_address) == JOIN_ADDRESS_FAILURES
        assert len(entries) == JOIN_SITE_FAILURES
        assert code not in str(entries)
    finally:
        stop_server(server)


# -- who the client is ----------------------------------------------------------------------


def _failed_sign_in_address(server: Server, forwarded_for: str) -> str:
    """Where the server says a failed sign-in came from (in its audit log)."""
    with httpx.Client(base_url=server.url, timeout=30, headers={"X-Forwarded-For": forwarded_for}) as client:
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert csrf
        wrong = {"username": "north.path", "password": "wrong", "csrf": csrf[1]}
        assert client.post("/login", data=wrong).status_code == 401
    token = api_token(server.data_dir, "admin")
    entries = httpx.get(
        f"{server.url}/api/audit",
        params={"event": "login failed"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["entries"]
    return str(entries[0]["client"])


def test_forwarded_headers_count_only_from_configured_proxies(data_dir: Path) -> None:
    seed_case(data_dir)
    add_user(data_dir, "admin", "admin", "North Trust")
    https = {"X-Forwarded-Proto": "https"}
    server = start_server(data_dir)
    try:
        assert _failed_sign_in_address(server, "203.0.113.9") == "127.0.0.1"
        assert "strict-transport-security" not in server.get("/login", headers=https).headers
    finally:
        stop_server(server)
    server = start_server(data_dir, args=("--trusted-proxy", "127.0.0.1/32", "--trusted-proxy", "::1"))
    try:
        assert _failed_sign_in_address(server, "203.0.113.9") == "203.0.113.9"
        assert server.get("/login", headers=https).headers["strict-transport-security"].startswith("max-age=")
    finally:
        stop_server(server)
    refused = collab("serve", "--trusted-proxy", "proxy.example", data_dir=data_dir)
    assert refused.returncode == 2
    assert "--trusted-proxy" in refused.stderr and "IP address or network" in refused.stderr
