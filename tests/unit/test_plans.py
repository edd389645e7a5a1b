"""Catalog views and the resize rules checked before any resize call."""

from __future__ import annotations

from decimal import Decimal

import pytest
from x402_compute import cmdline, errors, plans


def P(pid, hourly=None, vcpu=None, ram=None, disk=None, provider=None, locations=("lax",), **kw):
    d = {"id": pid, "locations": list(locations), **kw}
    for k, v in (("our_hourly", hourly), ("vcpu_count", vcpu), ("ram", ram), ("disk", disk), ("provider", provider)):
        if v is not None:
            d[k] = Decimal(str(v)) if k == "our_hourly" else v
    return d


def test_row_tolerates_missing_fields_and_uses_api_prices():
    r = plans.row({"id": "vcg-a100-1c-2g-6gb", "our_hourly": Decimal("0.125"), "monthly_cost": 90})
    assert r["ram_mb"] is None and r["vcpu"] is None  # never parsed from the id
    assert r["hourly_usd"] == "0.1250" and r["daily_usd"] is None and r["monthly_usd"] == "90.00"
    assert plans.row({"id": "x", "vultr_monthly": 5})["monthly_usd"] == "5.00"
    assert plans.row({"id": "x", "our_monthly": 7, "monthly_cost": 9})["monthly_usd"] == "7.00"
    assert plans.row({})["provider"] is None


def test_provider_field_then_do_prefix():
    assert plans.provider({"id": "do:s-1vcpu-1gb"}) == "digitalocean"
    assert plans.provider({"id": "vc2-1c-1gb"}) == "vultr"
    assert plans.provider({"id": "x", "provider": "DigitalOcean"}) == "digitalocean"


def test_select_filters_and_sorts_by_hourly():
    cat = [
        P("b", 0.02, provider="vultr", locations=["lax", "ewr"]),
        P("a", 0.01, provider="vultr"),
        P("g", 1.5, provider="vultr", gpu_type="NVIDIA_A100", type="vcg", locations=["ewr"]),
        P("d", 0.01, provider="digitalocean", locations=["nyc3"]),
        P("nopr", None),
        "junk",
    ]
    assert [p["id"] for p in plans.select(cat)] == ["a", "d", "b", "g", "nopr"]
    assert [p["id"] for p in plans.select(cat, provider_name="vultr", region="ewr")] == ["b", "g"]
    assert [p["id"] for p in plans.select(cat, gpu=True)] == ["g"]
    assert [p["id"] for p in plans.select(cat, gpu_type="a100")] == ["g"]
    assert plans.select(cat, gpu_type="h100") == []
    assert [p["id"] for p in plans.select(cat, max_hourly=Decimal("0.015"))] == ["a", "d"]


VULTR = [P("v1", 0.01, 1, 1024, 25, "vultr", ["lax", "ewr"]), P("v2", 0.02, 1, 2048, 55, "vultr", ["lax"]),
         P("v3", 0.04, 2, 4096, 80, "vultr", ["ewr"]), P("cheapbig", 0.015, 2, 512, 100, "vultr", ["lax"])]


def test_upgrade_targets_same_provider_region_not_smaller():
    assert [p["id"] for p in plans.upgrade_targets(VULTR[0], VULTR, "lax")] == ["v2"]
    assert [p["id"] for p in plans.upgrade_targets(VULTR[0], VULTR, "ewr")] == ["v3"]


def test_resize_preflight_rules():
    with pytest.raises(errors.PolicyError) as ei:
        plans.resize_preflight(VULTR[1], VULTR[0], VULTR, "lax", confirm_disk_resize=False)
    assert ei.value.code == "downgrade_not_supported" and ei.value.exit_code == 3
    assert set(ei.value.details["smaller_in"]) == {"hourly_usd", "ram_mb", "disk_gb"}
    with pytest.raises(errors.PolicyError) as ei:  # cheaper but less RAM is still a downgrade
        plans.resize_preflight(VULTR[0], VULTR[3], VULTR, "lax", confirm_disk_resize=False)
    assert ei.value.details["smaller_in"] == ["ram_mb"]
    with pytest.raises(errors.PolicyError) as ei:
        plans.resize_preflight(VULTR[0], VULTR[2], VULTR, "lax", confirm_disk_resize=False)
    assert ei.value.code == "region_unavailable"
    ok = plans.resize_preflight(VULTR[0], VULTR[1], VULTR, "lax", confirm_disk_resize=False)
    assert ok["grows_disk"] is True  # Vultr upgrades need no disk confirmation
    with pytest.raises(errors.UsageError):
        plans.resize_preflight(VULTR[0], None, VULTR, "lax", confirm_disk_resize=False)
    with pytest.raises(errors.UsageError):
        plans.resize_preflight(VULTR[0], VULTR[0], VULTR, "lax", confirm_disk_resize=False)
    do1, do2 = P("do:a", 0.01, 1, 1024, 25, "digitalocean", ["nyc3"]), P("do:b", 0.02, 1, 2048, 50, "digitalocean", ["nyc3"])
    with pytest.raises(errors.PolicyError) as ei:
        plans.resize_preflight(VULTR[0], do1, VULTR + [do1], "lax", confirm_disk_resize=False)
    assert ei.value.code == "provider_mismatch"
    with pytest.raises(errors.PolicyError) as ei:
        plans.resize_preflight(do1, do2, [do1, do2], "nyc3", confirm_disk_resize=False)
    assert ei.value.code == "disk_resize_confirmation_required" and "irreversible" in ei.value.message
    assert plans.resize_preflight(do1, do2, [do1, do2], "nyc3", confirm_disk_resize=True)["grows_disk"] is True
    # A DigitalOcean disk never shrinks (the API's 400 has no way forward): refused here, with the path.
    with pytest.raises(errors.PolicyError) as ei:
        plans.resize_preflight(do2, do1, [do1, do2], "nyc3", confirm_disk_resize=True, instance_id="i-1", hours_left=10)
    assert ei.value.code == "downgrade_not_supported" and ei.value.exit_code == 3
    assert (ei.value.details["from_disk_gb"], ei.value.details["to_disk_gb"]) == (50, 25)
    assert ei.value.details["shrink_path"]["steps"][0]["command"].startswith(cmdline.command("provision.py", "do:a", "nyc3", "--hours", "10"))
    assert "do:a nyc3" in ei.value.hint and "same disk" in ei.value.hint
    # An unknown current plan: nothing can be checked here, the server decides.
    assert plans.resize_preflight(None, VULTR[0], VULTR, "lax", confirm_disk_resize=False)["from"] is None


def test_prepaid_value():
    assert plans.prepaid_value_usd(10.5, P("x", "0.04")) == "0.42"
    assert plans.prepaid_value_usd(None, P("x", "0.04")) is None
    assert plans.prepaid_value_usd(3, None) is None
