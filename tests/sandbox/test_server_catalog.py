"""Catalog endpoints over loopback HTTP: plans, regions, OS images."""
from decimal import Decimal

import requests


def test_untyped_plans_omit_dedicated_and_gpu(sandbox):
    r = requests.get(sandbox.base_url + "/compute/plans")
    assert r.status_code == 200
    body = r.json()
    ids = [p["id"] for p in body["plans"]]
    assert body["count"] == len(ids)
    assert "vc2-1c-1gb" in ids and "vc2-2c-4gb" in ids
    assert "do:s-1vcpu-1gb" in ids and "do:s-2vcpu-4gb" in ids
    assert not [i for i in ids if i.startswith(("vdc-", "vcg-"))]


def test_typed_plans(sandbox):
    for ptype, prefix in (("vps", ("vc2-", "do:")), ("vhp", ("vhp-",)), ("vdc", ("vdc-",)), ("vcg", ("vcg-",))):
        plans = requests.get(sandbox.base_url + "/compute/plans", params={"type": ptype}).json()["plans"]
        assert plans, ptype
        assert all(p["id"].startswith(prefix) for p in plans), ptype
    gpu = requests.get(sandbox.base_url + "/compute/plans?type=vcg").json()["plans"]
    a100 = next(p for p in gpu if p["id"] == "vcg-a100-1c-2g-6gb")
    assert a100["gpu_type"] and isinstance(a100["gpu_vram_gb"], int)


def test_plan_fields_and_prices(sandbox):
    plans = requests.get(sandbox.base_url + "/compute/plans").json()["plans"]
    for p in plans:
        for field in ("id", "type", "provider", "vcpu_count", "ram", "disk", "disk_count", "bandwidth",
                      "our_hourly", "our_daily", "our_monthly", "monthly_cost", "vultr_monthly", "locations"):
            assert field in p, (p["id"], field)
        for field in ("our_hourly", "our_daily", "our_monthly", "monthly_cost", "vultr_monthly"):
            assert isinstance(p[field], (int, float)) and not isinstance(p[field], bool)
        assert Decimal(str(p["our_daily"])) == Decimal(str(p["our_hourly"])) * 24
        assert p["provider"] == ("digitalocean" if p["id"].startswith("do:") else "vultr")
        assert p["locations"]
    one = next(p for p in plans if p["id"] == "vc2-1c-1gb")
    assert one["ram"] == 1024 and one["vcpu_count"] == 1


def test_bad_plan_type_is_400(sandbox):
    r = requests.get(sandbox.base_url + "/compute/plans?type=bare-metal")
    assert r.status_code == 400
    assert "type" in r.json()["error"]


def test_regions(sandbox):
    regions = requests.get(sandbox.base_url + "/compute/regions").json()["regions"]
    ids = {r["id"] for r in regions}
    assert {"ewr", "lax", "ord", "fra", "nyc3", "sfo3", "ams3"} <= ids
    for r in regions:
        assert r["city"] and r["country"] and r["continent"]


def test_os_options(sandbox):
    opts = requests.get(sandbox.base_url + "/compute/os").json()["os_options"]
    ubuntu = next(o for o in opts if o["id"] == 2284)
    assert ubuntu["name"] == "Ubuntu 24.04 LTS x64"
    assert any(o["id"] > 10_000_000 and o["provider"] == "digitalocean" for o in opts)
    for o in opts:
        assert {"id", "name", "arch", "family"} <= set(o)


def test_health_and_unknown_route(sandbox):
    assert requests.get(sandbox.base_url + "/_sandbox/health").json() == {"ok": True}
    r = requests.get(sandbox.base_url + "/compute/nothing-here")
    assert r.status_code == 404 and r.json()["error"]
    r = requests.put(sandbox.base_url + "/compute/plans")
    assert r.status_code == 405 and "GET" in r.headers["Allow"]
