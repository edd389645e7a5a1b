"""Paid, then the action fails (compute-api.md §3): the amount is credited and the half-built VM is
destroyed, as the error body's `cleanup: destroyed` says."""
import requests


def test_provision_failing_after_create_destroys_the_vm_and_credits(make_sandbox, sandbox, tools):
    sb = make_sandbox(facilitator=sandbox.facilitator)
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    real_public = sb.app.provider.public

    def boom(order):
        raise RuntimeError("provider API went away after create")
    sb.app.provider.public = boom                  # the order exists, then building the answer fails
    try:
        body = {"plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284, "prepaid_hours": 24, "network": "base"}
        _, paid, _ = tools.paid_post(sb, "/compute/provision", body, w)
    finally:
        sb.app.provider.public = real_public
    assert paid.status_code >= 400, paid.text
    err = paid.json()
    assert err["details"]["cleanup"] == "destroyed" and err["details"]["credited"] == 0.2496
    owner = w["evm_address"].lower()
    assert sb.app.store.credits(owner)["balance"] == 249_600
    live = [o for o in sb.app.store.orders_of(owner) if o["status"] != "destroyed"]
    assert live == [], live                        # paid once: credited, and no VM left running too
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances")
    listed = requests.get(sb.base_url + "/compute/instances", headers=h).json()["instances"]
    assert all(o["status"] == "destroyed" for o in listed)
