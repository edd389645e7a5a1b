"""A client that promises more body than it sends must not hold a handler thread forever: at the
request deadline it is answered 408 and the connection is closed (test_hardening.py has the rest)."""

import socket

import requests


def test_short_body_connection_is_closed_at_the_deadline(make_sandbox, sandbox):
    sb = make_sandbox(facilitator=sandbox.facilitator, request_timeout=0.5)
    host, port = sb.base_url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"POST /compute/provision HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                  "Content-Length: 100\r\n\r\n{".encode())
        data = b""
        while chunk := s.recv(65536):   # waits for the 408 and the close (the socket's 10 s timeout: a hang)
            data += chunk
        assert data.startswith(b"HTTP/1.1 408 "), data[:200]
        assert b"not complete within 0.5 s" in data
    # and the server still answers
    assert requests.get(sb.base_url + "/_sandbox/health", timeout=5).status_code == 200
