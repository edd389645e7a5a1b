"""keepalive.py's arithmetic: how many hours one run extends by, durations, and the --for anchor."""

from __future__ import annotations

from argparse import Namespace
from datetime import datetime, timedelta, timezone

import pytest
from x402_compute.commands.keepalive import _target, extension_hours, parse_duration
from x402_compute.errors import UsageError
from x402_compute.instances import needs_extension, summary


@pytest.mark.parametrize("left, threshold, block, to_target, hours", [
    (5.0, 6, 24, None, 24),       # one block brings it back above the threshold
    (2.0, 30, 24, None, 48),      # a threshold above one block: as many whole blocks as it takes
    (5.9, 6, 48, None, 48),       # --block-hours 48
    (0.1, 100, 24, None, 120),    # 99.9 h short: five blocks
    (5.0, 6, 24, 100.0, 24),      # the target is far: one block now, more later
    (5.0, 6, 24, 47.5, 24),       # 48 h to go: a block now and a block later cost the same
    (5.0, 6, 24, 30.0, 30),       # 30 h to go: 30 h now, not 24 now and a 24 h minimum later
    (5.0, 6, 24, 10.0, 24),       # 10 h to go: the service's 24 h minimum
    (2.0, 30, 24, 30.2, 31),      # two blocks would overshoot: the 31 whole hours that reach it
])
def test_extension_hours(left, threshold, block, to_target, hours):
    assert extension_hours(left, threshold, block, to_target) == hours


@pytest.mark.parametrize("text, hours", [("36h", 36), ("3d", 72), ("2w", 336), (" 1D ", 24)])
def test_durations(text, hours):
    assert parse_duration(text) == timedelta(hours=hours)


@pytest.mark.parametrize("text", ["0d", "3", "1.5d", "3 days", "-1d", "d"])
def test_bad_durations(text):
    with pytest.raises(UsageError):
        parse_duration(text)


def test_for_is_anchored_at_the_first_run_with_that_value():
    t0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
    first = _target(Namespace(until=None, for_="3d"), {}, t0)
    assert first == {"until": "2030-01-04T00:00:00Z", "set_by": "--for 3d", "anchored_at": "2030-01-01T00:00:00Z"}
    # An hour later, the same --for keeps the target; another value sets a new one; --until is as given.
    later = t0 + timedelta(hours=1)
    assert _target(Namespace(until=None, for_="3d"), {"target": first}, later) == first
    assert _target(Namespace(until=None, for_="4d"), {"target": first}, later)["until"] == "2030-01-05T01:00:00Z"
    assert _target(Namespace(until="2030-02-01T12:00:00+02:00", for_=None), {"target": first}, later)["until"] == "2030-02-01T10:00:00Z"


def test_needs_extension_beside_hours_left():
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    live = {"status": "active", "power_status": "running", "server_status": "ok", "ip_address": "192.0.2.1"}
    row = summary({**live, "expires_at": "2030-01-01T05:00:00Z"}, now)
    assert (row["hours_left"], row["expires_in_hours"], row["needs_extension"]) == (5.0, 5.0, True)
    row = summary({**live, "expires_at": "2030-01-01T06:00:00Z"}, now)
    assert (row["expires_in_hours"], row["needs_extension"]) == (6.0, False)
    gone = summary({**live, "expires_at": "2029-12-31T22:00:00Z"}, now)
    assert (gone["state"], gone["hours_left"], gone["expires_in_hours"], gone["needs_extension"]) == ("expired", 0.0, -2.0, False)
    destroyed = summary({**live, "expires_at": "2030-01-01T01:00:00Z", "destroyed_at": "2030-01-01T00:00:00Z"}, now)
    assert (destroyed["expires_in_hours"], destroyed["needs_extension"]) == (None, False)
    assert needs_extension("running", None) is False
