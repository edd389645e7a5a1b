"""Journal: 0600 files, state transitions, secrets never in the public view."""

from __future__ import annotations

import os
import stat

import pytest
from x402_compute.errors import UsageError
from x402_compute.payments.journal import Journal, new_id, public


def entry(**over):
    e = {"id": new_id(), "kind": "provision", "request": {"method": "POST", "path": "/compute/provision", "body": "{}"},
         "idempotency_key": "k", "payment_header_name": "X-PAYMENT", "payment_header_value": "SECRET-BEARER"}
    e.update(over)
    return e


def test_create_is_0600_and_sent(tmp_path):
    j = Journal(tmp_path)
    e = j.create(entry())
    p = tmp_path / "journal" / f"{e['id']}.json"
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(p.parent).st_mode) == 0o700
    assert e["status"] == "sent" and e["history"][0]["status"] == "sent"
    with pytest.raises(Exception):
        j.create(entry(id=e["id"]))  # never overwrite a payment record


def test_transitions_and_history(tmp_path):
    j = Journal(tmp_path)
    e = j.create(entry())
    j.update(e["id"], "unknown", reason="timeout")
    got = j.update(e["id"], "settled", order_id="o1", tx_hash="0xt")
    assert got["status"] == "settled" and got["order_id"] == "o1"
    assert [h["status"] for h in got["history"]] == ["sent", "unknown", "settled"]
    assert stat.S_IMODE(os.stat(j.path(e["id"])).st_mode) == 0o600
    with pytest.raises(ValueError):
        j.update(e["id"], "paid-twice")
    e2 = j.create(entry())
    j.update(e2["id"], "rejected", reason="insufficient_funds")
    assert {x["status"] for x in j.list()} == {"settled", "rejected"}


def test_public_view_hides_the_signed_payment(tmp_path):
    j = Journal(tmp_path)
    e = j.create(entry())
    assert j.get(e["id"])["payment_header_value"] == "SECRET-BEARER"  # kept, to resend the same payload
    assert "SECRET-BEARER" not in str(public(j.get(e["id"])))


def test_find_by_prefix_and_bad_ids(tmp_path):
    j = Journal(tmp_path)
    e = j.create(entry())
    assert j.find(e["id"][:8])["id"] == e["id"]
    for bad in ("../../etc/passwd", "zz", ""):
        with pytest.raises(UsageError):
            j.find(bad)
    with pytest.raises(UsageError):
        j.get("0" * 32)


def test_only_the_write_before_the_payment_leaves_is_forced_to_disk(tmp_path, monkeypatch):
    # fsync'd descriptors, told apart as the entry's file or its folder.
    synced: list[str] = []
    real = os.fsync

    def spy(fd):
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    j = Journal(tmp_path)
    e = j.create(entry(status="reserved", payment_header_value=None))
    assert synced == []  # a reservation: nothing signed, nothing to lose
    j.update(e["id"], note_spent="a Solana account")  # money spent while signing: forced
    assert synced == ["file", "folder"]
    synced.clear()
    j.update(e["id"], "sent", payment_header_value="SECRET-BEARER")
    assert synced == ["file", "folder"]  # on disk, name included, before the payment leaves
    synced.clear()
    j.update(e["id"], "settled", order_id="o")
    assert synced == [] and j.get(e["id"])["status"] == "settled"  # atomic, seen at once, not forced


def test_reconcile_checks_a_refused_payment_still_live(tmp_path, monkeypatch):
    """Issue 20.2: a refused signature still valid is asked about like an unknown one: never used and
    no longer valid → expired (stops counting); used after all → unknown (the money moved)."""
    import time as _time

    from x402_compute.payments import onchain
    from x402_compute.payments import reconcile as rec
    from x402_compute.payments.journal import unresolved

    j = Journal(tmp_path)
    signed = {"kind": "provision", "method": "x402", "payment_header_name": "X-PAYMENT", "payment_header_value": "eyJ4In0="}
    a = j.create({"id": new_id(), "status": "rejected", "valid_before": _time.time() + 200, **signed})
    b = j.create({"id": new_id(), "status": "rejected", "valid_before": _time.time() + 200, **signed})
    dead = j.create({"id": new_id(), "status": "rejected", "valid_before": _time.time() - 1, **signed})
    gone = lambda e: True  # noqa: E731
    assert unresolved(a, _time.time(), pid_gone=gone) and not unresolved(dead, _time.time(), pid_gone=gone)
    assert rec.entry_row(a)["unresolved"] is True and rec.entry_row(dead)["unresolved"] is False

    monkeypatch.setattr(onchain, "check", lambda entry, rpc: {"state": "expired_unused", "query": "authorizationState"})
    assert rec.ask_chain(j, a, None, False)["state"] == "expired_unused" and j.get(a["id"])["status"] == "expired"
    monkeypatch.setattr(onchain, "check", lambda entry, rpc: {"state": "used", "query": "authorizationState"})
    rec.ask_chain(j, b, None, False)
    assert j.get(b["id"])["status"] == "unknown" and "refused by the server, but used" in j.get(b["id"])["reason"]
    assert rec.ask_chain(j, dead, None, False) is None  # past its window: nothing left to ask
