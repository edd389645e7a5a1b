"""redact.scope(): what a command registers inside a scope is scrubbed from that command's output
only, never from another thread's, and forgotten when the scope ends, so a long-running process
(the MCP server) neither leaks one call's secrets into the registry for ever nor lets it grow with
every signed request. Outside any scope (a script), registering is process-wide as before."""

from __future__ import annotations

import threading

from x402_compute import redact

MASK = redact.MASK


def test_scoped_secrets_are_scrubbed_inside_and_forgotten_after():
    with redact.scope():
        redact.register_headers({"X-Auth-Signature": "0xsig-of-this-request-123456", "Accept": "application/json"})
        assert redact.scrub({"echo": "got 0xsig-of-this-request-123456"}) == {"echo": f"got {MASK}"}
        assert redact.scrub("application/json") == "application/json"
    assert redact.scrub("got 0xsig-of-this-request-123456") == "got 0xsig-of-this-request-123456"


def test_process_wide_secrets_stay_scrubbed_inside_scopes():
    redact.register("process-wide-key-abcdef")
    try:
        with redact.scope():
            assert redact.scrub("k=process-wide-key-abcdef") == f"k={MASK}"
    finally:
        redact._secrets.discard("process-wide-key-abcdef")


def test_threads_scopes_are_independent():
    ready, done = threading.Barrier(2), {}

    def run(name: str) -> None:
        with redact.scope():
            redact.register(f"secret-of-{name}-0123456789")
            ready.wait(timeout=10)
            done[name] = redact.scrub("secret-of-a-0123456789 secret-of-b-0123456789")

    threads = [threading.Thread(target=run, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert done["a"] == f"{MASK} secret-of-b-0123456789"
    assert done["b"] == f"secret-of-a-0123456789 {MASK}"


def test_a_payment_header_is_scrubbed_in_every_scope_that_registers_it():
    """Registering a header value remembers it (a paid run registers its payment on every journal
    write and send): the memory is per scope, so a second command sending the same header value
    (reconcile --resend in the MCP server) has it scrubbed too, and a scope's memory goes with it."""
    import base64
    import json

    value = base64.b64encode(json.dumps({"payload": {"signature": "0x" + "ab" * 65}}).encode()).decode()
    for _ in range(2):
        with redact.scope():
            for _ in range(2):
                redact.register_header("PAYMENT-SIGNATURE", value)
            assert redact.scrub(f"echo {value} sig {'ab' * 65}") == f"echo {MASK} sig {MASK}"
        assert redact.scrub(f"sig {'ab' * 65}") == f"sig {'ab' * 65}"
