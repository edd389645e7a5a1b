"""Provider emulation over loopback HTTP: lifecycle, SSH banner (test_ssh.py logs in), password, resize, extend, destroy, expiry."""
import socket
import time
import uuid
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
import requests

from tests.helpers import wait_until

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@x402"


def _parse(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Mgmt:
    """Signed management calls for one wallet."""

    def __init__(self, sb, tools, wallet):
        self.sb, self.tools, self.w = sb, tools, wallet

    def call(self, method, path, json_body=None):
        import json as _json
        raw = b"" if json_body is None else _json.dumps(json_body, separators=(",", ":")).encode()
        h = self.tools.evm_auth(self.w["evm_private_key"], method, path, raw)
        if raw:
            h["Content-Type"] = "application/json"
        return requests.request(method, self.sb.base_url + path, data=raw, headers=h, timeout=30)

    def get(self, oid):
        r = self.call("GET", f"/compute/instances/{oid}")
        assert r.status_code == 200, r.text
        return r.json()["order"]

    def wait_active(self, oid, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            o = self.get(oid)
            if o["status"] == "active":
                return o
            time.sleep(0.05)
        raise AssertionError(f"instance {oid} not active: {o}")


def _banner(ip, port):
    with socket.create_connection((ip, port), timeout=3) as s:
        return s.recv(64)


def test_vultr_lifecycle_and_ssh_banner(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    m = Mgmt(sandbox, tools, w)
    order = tools.provision(sandbox, w)["order"]
    assert order["status"] == "pending" and order["power_status"] == "stopped"
    assert order["server_status"] == "none" and order["ip_address"] == "0.0.0.0" and order["ssh_port"] is None
    assert order["access_method"] == "one_time_password_fallback"
    assert order["created_at"].endswith("Z") and order["expires_at"].endswith("Z")
    assert _parse(order["expires_at"]) - _parse(order["created_at"]) == pytest.approx(24 * 3600, abs=0.002)
    assert order["vultr_instance_id"] and order["vultr_status"] == "pending" and order["os_id"] == 2284
    active = m.wait_active(order["id"])
    assert active["power_status"] == "running" and active["server_status"] == "ok"
    ip = active["ip_address"]
    assert ip.startswith("127.") and ip != "0.0.0.0"
    assert _banner(ip, active["ssh_port"]).startswith(b"SSH-2.0-x402sandbox\r\n")   # then the key exchange
    # A client that speaks first still reads the banner.
    with socket.create_connection((ip, active["ssh_port"]), timeout=3) as s:
        s.sendall(b"SSH-2.0-test\r\n")
        assert s.recv(64).startswith(b"SSH-2.0-x402sandbox")

    # Destroy: success, listener closed, still listed with destroyed_at.
    r = m.call("DELETE", f"/compute/instances/{order['id']}")
    assert r.status_code == 200 and r.json()["success"] is True and r.json()["destroyed_at"]
    with pytest.raises(OSError):
        _banner(ip, active["ssh_port"])
    listed = m.call("GET", "/compute/instances").json()["instances"]
    assert [(i["id"], i["status"]) for i in listed] == [(order["id"], "destroyed")]
    assert listed[0]["destroyed_at"]
    assert m.call("DELETE", f"/compute/instances/{order['id']}").status_code == 409
    assert m.call("POST", f"/compute/instances/{order['id']}/password").status_code == 409
    # Extending a destroyed instance is refused before any payment.
    r = requests.post(f"{sandbox.base_url}/compute/instances/{order['id']}/extend", json={"extend_hours": 24})
    assert r.status_code == 409


def test_instance_addresses_are_unique_loopback(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    m = Mgmt(sandbox, tools, w)
    ids = [tools.provision(sandbox, w)["order"]["id"] for _ in range(2)]
    actives = [m.wait_active(i) for i in ids]
    ips = {a["ip_address"] for a in actives}
    assert len(ips) == 2 and all(ip.startswith("127.") for ip in ips)
    for a in actives:
        assert _banner(a["ip_address"], a["ssh_port"]).startswith(b"SSH-2.0-")


def test_one_time_password_once(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    m = Mgmt(sandbox, tools, w)
    oid = tools.provision(sandbox, w)["order"]["id"]
    active = m.wait_active(oid)
    r = m.call("POST", f"/compute/instances/{oid}/password")
    assert r.status_code == 200, r.text
    access = r.json()["access"]
    assert access["method"] == "one_time_password" and access["username"] == "root"
    assert access["ip_address"] == active["ip_address"] and len(access["password"]) >= 12
    r = m.call("POST", f"/compute/instances/{oid}/password")
    assert r.status_code == 409
    assert "password" not in m.get(oid)
    # Not the owner: 404, and a malformed id: 400.
    other = Mgmt(sandbox, tools, sandbox.wallets[1])
    assert other.call("POST", f"/compute/instances/{oid}/password").status_code == 404
    assert m.call("POST", "/compute/instances/12345/password").status_code == 400


@pytest.fixture
def slow(make_sandbox, sandbox):
    """Boot and resize slow enough that "not active yet" and "resize running" are observable."""
    return make_sandbox(facilitator=sandbox.facilitator, boot_seconds=1.0, resize_seconds=1.5)


def test_digitalocean_rules(slow, tools):
    sandbox = slow
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    m = Mgmt(sandbox, tools, w)
    # No SSH key: 400 before any payment.
    body = {"plan": "do:s-1vcpu-1gb", "region": "nyc3", "os_id": 160232537, "prepaid_hours": 24}
    r = requests.post(sandbox.base_url + "/compute/provision", json=body)
    assert r.status_code == 400 and "ssh_public_key" in r.json()["error"]
    order = tools.provision(sandbox, w, plan="do:s-1vcpu-1gb", region="nyc3", os_id=160232537,
                            ssh_public_key=SSH_KEY)["order"]
    assert order["status"] == "new" and order["locked"] is False and order["access_method"] == "ssh_key"
    active = m.wait_active(order["id"])
    assert _banner(active["ip_address"], active["ssh_port"]).startswith(b"SSH-2.0-x402sandbox\r\n")
    r = m.call("POST", f"/compute/instances/{order['id']}/password")
    assert r.status_code == 400 and "DigitalOcean" in r.json()["error"]

    # Disk growth needs confirmation.
    path = f"/compute/instances/{order['id']}/resize"
    r = m.call("POST", path, {"plan": "do:s-2vcpu-4gb"})
    assert r.status_code == 400 and "confirm_disk_resize" in r.json()["error"]
    r = m.call("POST", path, {"plan": "do:s-2vcpu-4gb", "confirm_disk_resize": True})
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == "digitalocean" and r.json()["provider_action_id"]
    during = m.get(order["id"])
    assert during["locked"] is True and during["status"] == "off"
    assert m.call("POST", path, {"plan": "do:c-2"}).status_code == 409   # a resize is running
    after = m.wait_active(order["id"])
    assert after["plan"] == "do:s-2vcpu-4gb" and after["locked"] is False
    assert _banner(after["ip_address"], after["ssh_port"]).startswith(b"SSH-2.0-")
    # CPU/RAM-only (same disk): no confirmation needed. A disk decrease is refused.
    assert m.call("POST", path, {"plan": "do:c-2"}).status_code == 200
    m.wait_active(order["id"])
    r = m.call("POST", path, {"plan": "do:s-1vcpu-1gb"})
    assert r.status_code == 400 and "decreased" in r.json()["error"]
    # Other provider's plan.
    assert m.call("POST", path, {"plan": "vc2-2c-4gb"}).status_code == 400


def test_vultr_resize_math_and_rules(slow, tools):
    sandbox = slow
    w = tools.fresh_wallet(sandbox.facilitator, usd=20)
    m = Mgmt(sandbox, tools, w)
    order = tools.provision(sandbox, w, plan="vc2-1c-2gb", hours=48)["order"]
    path = f"/compute/instances/{order['id']}/resize"
    # Not active yet: 409.
    r = m.call("POST", path, {"plan": "vc2-2c-4gb"})
    assert r.status_code == 409
    active = m.wait_active(order["id"])
    assert m.call("POST", path, {"plan": "vc2-1c-1gb"}).json()["error"] == "Downgrading is not supported"
    assert m.call("POST", path, {"plan": "vc2-1c-1gb"}).status_code == 400
    assert m.call("POST", path, {"plan": "no-such-plan"}).status_code == 400
    assert m.call("POST", path, {}).status_code == 400
    assert m.call("POST", path, {"plan": "vc2-2c-4gb", "confirm_disk_resize": "yes"}).status_code == 400

    t0 = time.time()
    r = m.call("POST", path, {"plan": "vc2-2c-4gb"})
    t1 = time.time()
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["from_plan"] == "vc2-1c-2gb" and res["to_plan"] == "vc2-2c-4gb" and res["provider"] == "vultr"
    assert res["old_expires_at"] == active["expires_at"]
    exp = _parse(active["expires_at"])
    # hours_left is measured at the server's "now", somewhere in [t0, t1].
    assert (exp - t1) / 3600 - 1e-6 <= res["remaining_hours_before"] <= (exp - t0) / 3600 + 1e-6
    hours_left = Decimal(str(res["remaining_hours_before"]))
    credit = (hours_left * Decimal("0.0208")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert Decimal(str(res["remaining_credit"])) == credit
    assert res["remaining_hours_after"] == pytest.approx(float(credit / Decimal("0.0417")), abs=1e-5)
    new_exp = _parse(res["new_expires_at"])
    assert t0 + res["remaining_hours_after"] * 3600 - 1 <= new_exp <= t1 + res["remaining_hours_after"] * 3600 + 1
    during = m.get(order["id"])
    assert during["status"] == "resizing" and during["expires_at"] == res["new_expires_at"]
    assert m.call("POST", path, {"plan": "vc2-4c-8gb"}).status_code == 409
    after = m.wait_active(order["id"])
    assert after["plan"] == "vc2-2c-4gb"
    # Extend after resize is priced at the new plan.
    r = requests.post(f"{sandbox.base_url}/compute/instances/{order['id']}/extend", json={"extend_hours": 24})
    assert int(r.json()["accepts"][0]["maxAmountRequired"]) == 1_000_800  # 0.0417 × 24


def test_ai_machine_metadata(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    m = Mgmt(sandbox, tools, w)
    order = tools.provision(sandbox, w, ai_machine={"model_id": "qwen", "mode": "private"})["order"]
    ai = order["metadata"]["ai"]
    assert ai["model_id"] == "qwen" and ai["port"] == 8080 and ai["api_key"]
    active = m.wait_active(order["id"])
    # 8080, unless another sandbox on this machine holds that port on the same loopback address
    assert active["metadata"]["ai"]["endpoint"] == f"http://{active['ip_address']}:{active['metadata']['ai']['port']}/v1"


def test_expiry(make_sandbox, sandbox, tools):
    sb = make_sandbox(facilitator=sandbox.facilitator, boot_seconds=0.1)
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    m = Mgmt(sb, tools, w)
    oid = tools.provision(sb, w)["order"]["id"]
    active = m.wait_active(oid)
    real = time.time
    sb.app.provider.clock = lambda: real() + 24 * 3600 + 5   # a day later
    wait_until(lambda: m.get(oid)["status"] == "expired", "the instance to expire")
    with pytest.raises(OSError):
        _banner(active["ip_address"], active["ssh_port"])
    assert m.call("POST", f"/compute/instances/{oid}/resize", {"plan": "vc2-2c-4gb"}).status_code == 409
    assert m.call("POST", f"/compute/instances/{oid}/password").status_code == 409
    r = requests.post(f"{sb.base_url}/compute/instances/{oid}/extend", json={"extend_hours": 24})
    assert r.status_code == 409
    assert [i["status"] for i in m.call("GET", "/compute/instances").json()["instances"]] == ["expired"]


def test_unknown_instance_and_bad_ids(sandbox, tools):
    m = Mgmt(sandbox, tools, sandbox.wallets[0])
    assert m.call("GET", f"/compute/instances/{uuid.uuid4()}").status_code == 404
    assert m.call("DELETE", f"/compute/instances/{uuid.uuid4()}").status_code == 404
    for bad in ("not-a-uuid", "..", "1234"):
        r = m.call("GET", f"/compute/instances/{bad}")
        assert r.status_code in (400, 404), bad
    r = m.call("GET", "/compute/instances/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz")
    assert r.status_code == 400 and "UUID" in r.json()["error"]
