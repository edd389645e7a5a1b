"""--wait on a virtual clock: the poll backs off from 1 s to the interval (so a machine ready at
20 s is seen within about a second of it), and --wait-ssh reads and pins the host key."""

from __future__ import annotations

import uuid

import pytest
from x402_compute.errors import WaitTimeout
from x402_compute.ssh.hostkeys import HostKey, HostKeyChanged, HostKeys
from x402_compute.ssh.wait import backoff, wait_for_instance

from tests.helpers import ssh_keypair


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.pauses.append(s)
        self.t += s


class Api:
    """An instance that is provisioning until ``ready_at`` (virtual seconds), then running."""

    def __init__(self, clock: Clock, ready_at: float, **extra) -> None:
        self.clock, self.ready_at, self.extra = clock, ready_at, extra
        self.polls: list[float] = []

    def get_instance(self, iid: str) -> dict:
        self.polls.append(self.clock.t)
        if self.clock.t < self.ready_at:
            return {"id": iid, "status": "pending", "ip_address": "0.0.0.0", "expires_at": "2099-01-01T00:00:00Z"}
        return {"id": iid, "status": "active", "power_status": "running", "server_status": "ok", "ip_address": "127.0.0.7",
                "ssh_port": 2222, "expires_at": "2099-01-01T00:00:00Z", **self.extra}


def test_backoff_starts_at_one_second_and_never_exceeds_the_interval():
    gen = backoff(5.0)
    assert [next(gen) for _ in range(6)] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    gen = backoff(0.2)
    assert [next(gen) for _ in range(3)] == [0.2, 0.2, 0.2]


@pytest.mark.parametrize("ready_at, late_by_at_most", [(0.5, 0.5), (3.0, 0.0), (20.0, 2.0), (60.0, 5.0)])
def test_a_ready_machine_is_seen_soon(ready_at, late_by_at_most):
    clock = Clock()
    api = Api(clock, ready_at)
    order, banner = wait_for_instance(api, str(uuid.uuid4()), timeout=600, interval=5.0, clock=clock, sleep=clock.sleep)
    assert order["status"] == "active" and banner is None
    assert ready_at <= clock.t <= ready_at + late_by_at_most, (clock.t, api.polls)
    assert max(clock.pauses) <= 5.0
    # The quick start costs a few polls more than a fixed 5 s interval would make, not more.
    assert len(api.polls) <= ready_at / 5 + 5


def test_ssh_wait_pins_the_key_the_machine_presents(tmp_path):
    _, pub = ssh_keypair(tmp_path, "host")
    _, other = ssh_keypair(tmp_path, "other")
    iid = str(uuid.uuid4())
    store = HostKeys(tmp_path / "state")
    clock = Clock()
    presented: list = []
    scans: list = []

    def scan(host, port, key_type=None):
        scans.append((host, port, key_type))
        return list(presented)

    got: dict = {}
    api = Api(clock, 2.0, ssh_host_public_key=pub)
    # SSH answers from 4 s, but the key exchange completes only from 9 s: keep waiting until then.
    banner = lambda host, port: "SSH-2.0-test" if clock.t >= 4 else None  # noqa: E731
    clock_start = clock.t

    def scan_late(host, port, key_type=None):
        if clock.t >= 9:
            presented[:] = [HostKey.parse(pub)]
        return scan(host, port, key_type)

    order, line = wait_for_instance(api, iid, timeout=60, interval=5.0, ssh=True, clock=clock, sleep=clock.sleep,
                                    banner=banner, host_keys=store, scan=scan_late, pinned=got.update)
    assert line == "SSH-2.0-test" and clock.t - clock_start >= 9
    assert scans[0] == ("127.0.0.7", 2222, "ssh-ed25519")
    assert got["status"] == "pinned_now" and got["verified_by"] == "api" and store.pinned(iid) == [HostKey.parse(pub)]
    # A later wait (or login) meeting another key stops at once: exit 3, the pin unchanged.
    presented[:] = [HostKey.parse(other)]
    with pytest.raises(HostKeyChanged):
        wait_for_instance(api, iid, timeout=60, interval=5.0, ssh=True, clock=clock, sleep=clock.sleep,
                          banner=banner, host_keys=store, scan=scan)
    assert store.pinned(iid) == [HostKey.parse(pub)]


def test_ssh_wait_without_a_key_exchange_times_out_paid_for(tmp_path):
    clock = Clock()
    api = Api(clock, 0.0)
    with pytest.raises(WaitTimeout) as e:
        wait_for_instance(api, str(uuid.uuid4()), timeout=30, interval=5.0, ssh=True, clock=clock, sleep=clock.sleep,
                          banner=lambda h, p: "SSH-2.0-x", host_keys=HostKeys(tmp_path / "s"), scan=lambda h, p, key_type=None: [])
    assert e.value.exit_code == 5 and "host key" in e.value.message
    assert not (tmp_path / "s" / "known_hosts").exists()
