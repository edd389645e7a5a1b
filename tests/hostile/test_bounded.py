"""Class 5: bounded parsing. A body is capped before decoding (4 MiB API, 1 MiB JSON-RPC), JSON
nesting is measured in one linear scan, and one deadline (COMPUTE_TIMEOUT) covers the whole
exchange, so a server answering hugely, deeply, pathologically or a byte at a time cannot hold
or crash the client.

The subprocess and thread deadlines below are hang guards, not speed measurements: each
misbehaviour would hold the client many times longer (minutes to hours), so a broken guard fails
them; the error messages name the deadline that ended each exchange.
"""

from __future__ import annotations

import pytest
from x402_compute.config import Settings
from x402_compute.errors import ComputeError, NetworkError
from x402_compute.payments.rpc import JsonRpc

from tests.helpers import finishes, run_script
from tests.hostile.stub import Reply, deep, huge, quadratic_escapes


def browse(hostile_env, timeout="10"):
    code, doc, err = run_script("browse_plans.py", env=hostile_env(COMPUTE_TIMEOUT=timeout), timeout=90)
    return code, doc, err


@pytest.mark.parametrize("chunked", [True, False])
def test_a_huge_body_is_cut_off_unread(hostile, hostile_env, chunked):
    hostile.override("GET", "/compute/plans", Reply(200, stream=huge(64), length=None if chunked else 64 * 1024 * 1024 + 12))
    code, doc, _ = browse(hostile_env)
    assert code == 1 and doc["error"]["code"] == "response_too_large" and "4194304" in doc["error"]["message"]


def test_a_compressed_bomb_is_cut_off_at_the_cap(hostile, hostile_env):
    import gzip

    bomb = gzip.compress(b'{"plans": [' + b" " * (200 * 1024 * 1024) + b"]}", compresslevel=9)  # 200 MiB from ~200 KB
    hostile.override("GET", "/compute/plans", Reply(200, bomb, {"Content-Encoding": "gzip", "Content-Type": "application/json"}))
    code, doc, _ = browse(hostile_env)
    assert code == 1 and doc["error"]["code"] == "response_too_large"


def test_quadratic_escapes_parse_in_linear_time(hostile, hostile_env):
    # 1M escaped quotes in an unterminated string: the old regex scan rescanned the rest of the
    # body from each of them (about 10 s for 20 000; hours for this one).
    hostile.override("GET", "/compute/plans", Reply(200, quadratic_escapes(1_000_000, terminated=False)))
    code, doc, _ = browse(hostile_env)
    assert code == 1 and doc["error"]["code"] == "bad_response", doc


def test_deep_nesting_is_a_clear_error_not_a_crash(hostile, hostile_env):
    hostile.override("GET", "/compute/plans", Reply(200, deep(1_000_000)))
    code, doc, _ = browse(hostile_env)
    assert code == 1 and doc["error"]["code"] == "bad_response"


@pytest.mark.parametrize("head", [False, True], ids=["body", "headers"])
def test_a_server_dripping_bytes_cannot_hold_the_client(hostile, hostile_env, head):
    # 400 bytes at one per 0.25 s: 100 s to answer; COMPUTE_TIMEOUT=2 ends it after 2.
    hostile.override("GET", "/compute/plans", Reply(200, b'{"plans": []}' + b" " * 387, drip=0.25, drip_head=head))
    code, doc, _ = browse(hostile_env, timeout="2")
    assert code == 1 and doc["error"]["code"] == "network_error" and "within 2 s" in doc["error"]["message"], doc


def test_retries_share_the_one_deadline(hostile, hostile_env):
    # Each answer a 503 after 0.8 s: the reads would be retried twice (3 x 0.8 s plus backoff),
    # but COMPUTE_TIMEOUT=1.5 is for the whole call.
    hostile.override("GET", "/compute/plans", Reply(503, {"error": "busy"}, delay=0.8))
    code, doc, _ = browse(hostile_env, timeout="1.5")
    assert code == 1
    assert len(hostile.received("GET", "/compute/plans")) <= 2


def test_a_dripped_paid_answer_ends_within_the_deadline_and_signs_once(hostile, hostile_env):
    # Every paid answer dripped over 100 s: each send ends at the 2 s deadline, and the one
    # resend carries the same signed payment (what happens then is the flow's rule, class 3).
    hostile.override("POST", "/compute/provision", lambda req, honest: Reply(201, honest().body_bytes() + b" " * 400, drip=0.25), when="paid")
    code, doc, _ = run_script("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes", env=hostile_env(COMPUTE_TIMEOUT="2"), timeout=90)
    assert code != 0 and doc["ok"] is False
    assert len(hostile.paid_requests()) == 2 and len(hostile.signatures()) == 1


# -- JSON-RPC ----------------------------------------------------------------------------------------

def rpc(hostile, timeout=2.0) -> JsonRpc:
    return JsonRpc(Settings(rpc_urls={"megaeth": f"{hostile.base_url}/rpc"}, timeout=timeout))


def test_rpc_answer_over_one_mib_is_refused(hostile):
    hostile.override("POST", "/rpc", Reply(200, stream=huge(2, prefix=b'{"jsonrpc": "2.0", "id": 1, "result": "0x', filler=b"00")))
    with pytest.raises(ComputeError) as e:
        rpc(hostile).eth_chain_id("megaeth")
    assert e.value.code == "response_too_large" and "1048576" in e.value.message


def test_rpc_drip_ends_at_the_deadline(hostile):
    hostile.override("POST", "/rpc", Reply(200, b'{"jsonrpc": "2.0", "id": 1, "result": "0x1"}' + b" " * 300, drip=0.25))
    with pytest.raises(NetworkError) as e:
        finishes(lambda: rpc(hostile, timeout=1.5).eth_chain_id("megaeth"), "a dripped RPC answer", timeout=30)
    assert "within 1.5 s" in e.value.message


def test_rpc_deep_or_quadratic_answers_are_typed_errors(hostile):
    for body in (deep(500_000), quadratic_escapes(300_000, terminated=False)):
        hostile.override("POST", "/rpc", Reply(200, body))
        with pytest.raises(ComputeError) as e:
            rpc(hostile, timeout=30).eth_chain_id("megaeth")
        assert e.value.code == "rpc_bad_result"


def test_an_oversized_www_authenticate_is_not_read(hostile, hostile_env):
    # 20 header lines of 60 KB each (http.client's own limit is 64 KB a line, 100 lines): merged,
    # 1.2 MB of challenge text, more than the 1 MiB this client reads.
    body = b'{"error": "Payment required"}'
    line = b'WWW-Authenticate: Payment id="' + b"a" * 60_000 + b'", method="tempo", intent="charge"\r\n'
    raw = b"HTTP/1.1 402 Payment Required\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body) + line * 20 + b"\r\n" + body
    hostile.override("POST", "/compute/provision", Reply(raw=raw), when="unpaid")
    code, doc, _ = run_script("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes", env=hostile_env())
    assert code == 1 and doc["error"]["code"] == "bad_challenge" and "1048576" in doc["error"]["message"], doc
    assert not hostile.paid_requests()
