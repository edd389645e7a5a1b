"""The client's HTTP transport (x402_compute.api.http, on the standard library's http.client) against
real loopback servers: kept-alive connections and a stale one never resending a write, repeated
headers joined, HTTPS verified against the CA the environment names (refused otherwise, before a
byte of the request left), and the environment's proxies: absolute-form to an HTTP proxy, a CONNECT
tunnel for HTTPS with the target's certificate checked, NO_PROXY, proxy credentials.

Slow, huge, compressed and malformed answers are the hostile suite's (tests/hostile/test_bounded.py)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import select
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from x402_compute.api import http as xhttp
from x402_compute.api.http import ConnectFailed, Transport, TransportError, bounded_request, new_session


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # quiet
        pass

    def _answer(self):
        srv = self.server
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        srv.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body,
                         "conn": id(self.connection)})
        out = json.dumps({"ok": True, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        for v in ("Payment a=1", "Payment b=2"):
            self.send_header("WWW-Authenticate", v)
        if srv.close_after:
            self.send_header("Connection", "keep-alive")
        self.end_headers()
        self.wfile.write(out)
        self.wfile.flush()
        if srv.close_after:  # says keep-alive, then closes: the client's idle connection goes stale
            self.close_connection = True

    do_GET = do_POST = _answer


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[dict] = []
        self.close_after = False
        self.conns = 0
        self.tls = tls

    def get_request(self):
        sock, addr = super().get_request()
        self.conns += 1
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, addr

    def __enter__(self):
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()

    @property
    def port(self) -> int:
        return self.server_address[1]


@pytest.fixture(autouse=True)
def fresh_routes(monkeypatch):
    """Each test's own environment: no proxy or CA variables from the machine, routes looked up again."""
    for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
              "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(k, raising=False)
    xhttp._route_cache.clear()
    monkeypatch.setattr(xhttp, "_tls", None)
    yield
    xhttp._route_cache.clear()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and a certificate it signed for 127.0.0.1 (and one for another name), made here."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x402-compute test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(name: str, san: x509.GeneralName) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([san]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        c, k = d / f"{name}.pem", d / f"{name}.key"
        c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return str(c), str(k)

    return {"ca": str(d / "ca.pem"), "ip": leaf("loopback", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
            "other": leaf("other", x509.DNSName("compute.example"))}


def tls_server(cert: tuple[str, str]) -> Server:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    return Server(tls=ctx)


def get(session, url: str, **kw):
    return bounded_request(session, kw.pop("method", "GET"), url, deadline=10, **kw)


def test_one_connection_carries_every_request_and_repeated_headers_are_joined():
    with Server() as srv:
        s = new_session()
        for i in range(3):
            r = get(s, f"http://127.0.0.1:{srv.port}/x?i={i}", params={"q": "a b"})
            assert r.status == 200 and r.json() == {"ok": True, "path": f"/x?i={i}&q=a+b"}
        assert srv.conns == 1 and len({x["conn"] for x in srv.seen}) == 1
        assert r.headers["www-authenticate"] == "Payment a=1, Payment b=2" == r.headers["WWW-Authenticate"]
        assert srv.seen[0]["headers"]["User-Agent"].startswith("x402-compute/")
        s.close()


def test_a_connection_the_server_closed_is_not_reused_and_a_write_is_sent_once():
    with Server() as srv:
        srv.close_after = True
        s = new_session()
        assert get(s, f"http://127.0.0.1:{srv.port}/a").status == 200

        def closed() -> bool:  # the server's close has reached the client's idle socket
            (conn,) = s._idle[("http", "127.0.0.1", srv.port)]
            return bool(select.select([conn.sock], [], [], 5)[0])

        assert closed()
        r = get(s, f"http://127.0.0.1:{srv.port}/pay", method="POST", data=b'{"n":1}', headers={"Content-Type": "application/json"})
        assert r.status == 200
        assert [x["path"] for x in srv.seen] == ["/a", "/pay"] and srv.seen[1]["body"] == b'{"n":1}'
        assert srv.conns == 2  # a new connection, and the POST once


def test_a_refused_connection_provably_sent_nothing():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConnectFailed) as e:
        get(new_session(), f"http://127.0.0.1:{port}/x")
    assert e.value.sent is False and "refused" in str(e.value)
    t = Transport(f"http://127.0.0.1:{port}", retries=0)
    from x402_compute.errors import NetworkError

    with pytest.raises(NetworkError) as ne:
        t.request("POST", "/compute/provision", body=b"{}")
    assert ne.value.details["sent"] is False


def test_https_is_verified_against_the_ca_the_environment_names(pki, monkeypatch):
    with tls_server(pki["ip"]) as srv:
        url = f"https://127.0.0.1:{srv.port}/tls"
        with pytest.raises(ConnectFailed) as e:  # certifi's bundle does not know the test CA
            get(new_session(), url)
        assert e.value.sent is False and "certificate" in str(e.value) and not srv.seen
        monkeypatch.setattr(xhttp, "_tls", None)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["ca"])
        s = new_session()
        assert get(s, url).json() == {"ok": True, "path": "/tls"}
        assert get(s, url).status == 200 and srv.conns == 2  # the refused handshake, then one kept-alive connection


def test_https_to_a_certificate_for_another_name_is_refused(pki, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["ca"])
    with tls_server(pki["other"]) as srv:
        with pytest.raises(ConnectFailed) as e:
            get(new_session(), f"https://127.0.0.1:{srv.port}/x", method="POST", data=b"{}")
        assert e.value.sent is False and "certificate" in str(e.value) and not srv.seen


class Proxy:
    """A loopback HTTP proxy: CONNECT tunnels (relayed byte for byte) and absolute-form requests
    (answered by itself, recording the request line). Records every request head it got."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.heads: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c: socket.socket) -> None:
        with c:
            head = b""
            while b"\r\n\r\n" not in head:
                got = c.recv(4096)
                if not got:
                    return
                head += got
            text = head.split(b"\r\n\r\n", 1)[0].decode()
            self.heads.append(text)
            line = text.split("\r\n", 1)[0]
            if line.startswith("CONNECT "):
                host, port = line.split()[1].rsplit(":", 1)
                up = socket.create_connection((host, int(port)))
                c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._relay(c, up)
                return
            body = json.dumps({"proxied": line}).encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    @staticmethod
    def _relay(a: socket.socket, b: socket.socket) -> None:
        with b:
            socks = [a, b]
            while True:
                r, _, _ = select.select(socks, [], [], 10)
                if not r:
                    return
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)

    def close(self) -> None:
        self.sock.close()


def test_https_goes_through_the_proxy_tunnel_with_the_targets_certificate_checked(pki, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["ca"])
    proxy = Proxy()
    monkeypatch.setenv("HTTPS_PROXY", f"http://agent:s%40cret@127.0.0.1:{proxy.port}")
    try:
        with tls_server(pki["ip"]) as srv:
            r = get(new_session(), f"https://127.0.0.1:{srv.port}/through")
            assert r.json() == {"ok": True, "path": "/through"}
            (head,) = proxy.heads
            assert head.startswith(f"CONNECT 127.0.0.1:{srv.port} HTTP/1.")
            assert "Proxy-Authorization: Basic YWdlbnQ6c0BjcmV0" in head  # agent:s@cret, percent-decoded
            assert "Proxy-Authorization" not in srv.seen[0]["headers"]  # the credential went to the proxy only
    finally:
        proxy.close()


def test_plain_http_goes_to_the_proxy_in_absolute_form_unless_no_proxy_covers_the_host(monkeypatch):
    proxy = Proxy()
    monkeypatch.setenv("HTTP_PROXY", f"127.0.0.1:{proxy.port}")
    try:
        with Server() as srv:
            r = get(new_session(), f"http://127.0.0.1:{srv.port}/p?x=1")
            assert r.json() == {"proxied": f"GET http://127.0.0.1:{srv.port}/p?x=1 HTTP/1.1"} and not srv.seen
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            xhttp._route_cache.clear()
            assert get(new_session(), f"http://127.0.0.1:{srv.port}/direct").json() == {"ok": True, "path": "/direct"}
            assert len(proxy.heads) == 1
    finally:
        proxy.close()


def test_a_proxy_this_client_cannot_use_is_a_clear_error_before_anything_is_sent(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:pw@127.0.0.1:1080")
    with pytest.raises(TransportError) as e:
        get(new_session(), "https://compute.example/x")
    assert e.value.sent is False and "not an http:// proxy" in str(e.value) and "pw" not in str(e.value)


@pytest.mark.parametrize("closing", [True, False], ids=["connection-close", "keep-alive"])
def test_a_body_dripped_forever_ends_at_the_deadline(closing):
    """The deadline ends the body's read whether the socket is the connection's or (Connection:
    close) handed over to the response."""
    from tests.helpers import finishes

    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        c, _ = srv.accept()
        with c:
            c.recv(65536)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n" + (b"Connection: close\r\n" if closing else b"") + b"\r\n")
            while not stop.wait(0.05):
                try:
                    c.sendall(b" ")
                except OSError:
                    return

    threading.Thread(target=serve, daemon=True).start()
    try:
        with pytest.raises(xhttp.DeadlineExceeded):
            finishes(lambda: bounded_request(new_session(), "GET", f"http://127.0.0.1:{srv.getsockname()[1]}/", deadline=0.5),
                     "a dripped body", timeout=20)
    finally:
        stop.set()
        srv.close()


@pytest.mark.parametrize("body", [b"zz\r\nabc\r\n0\r\n\r\n", b"5\r\nab", b"f" * 40 + b"\r\n"], ids=["not-hex", "cut-short", "huge-size"])
def test_a_malformed_chunked_body_is_a_lost_connection_not_a_crash(body):
    srv = socket.create_server(("127.0.0.1", 0))

    def serve():
        c, _ = srv.accept()
        with c:
            c.recv(65536)
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)

    threading.Thread(target=serve, daemon=True).start()
    try:
        with pytest.raises(xhttp.ConnectionLost) as e:
            get(new_session(), f"http://127.0.0.1:{srv.getsockname()[1]}/")
        assert e.value.sent is True  # the request left: after a payment this is an unknown outcome
    finally:
        srv.close()
