"""A client that promises more body than it sends must not hold a handler thread
forever: the socket times out and the connection is closed."""

import socket
import time


def test_short_body_connection_is_closed_after_the_timeout(make_sandbox, monkeypatch):
    from x402_compute_sandbox import server

    monkeypatch.setattr(server._Handler, "timeout", 0.5)
    sb = make_sandbox()
    host, port = sb.base_url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /compute/provision HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        data = s.recv(65536)  # the server gives up on the body and closes (or answers 4xx), well before 10 s
        while data and not data.startswith(b"HTTP/1.1 4"):
            more = s.recv(65536)
            if not more:
                break
            data += more
        assert time.monotonic() - started < 5
        assert data == b"" or data.startswith(b"HTTP/1.1 4"), data[:200]
    # and the server still answers
    import requests

    assert requests.get(sb.base_url + "/_sandbox/health", timeout=5).status_code == 200
