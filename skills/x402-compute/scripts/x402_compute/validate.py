"""Argument checks done before any network call: ids go into URL paths."""

from __future__ import annotations

import re
import uuid

from .errors import UsageError

_PLAN = re.compile(r"^(do:)?[a-z0-9][a-z0-9-]{1,63}$")
_REGION = re.compile(r"^[a-z]{2,5}[0-9]{0,2}$")
_LABEL = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
MIN_HOURS = 24


def instance_id(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except (ValueError, AttributeError):
        raise UsageError(
            f"Instance id must be a UUID (as shown by list_instances.py), got {value!r}."
        ) from None


def server_instance_id(value, what: str = "the instance id") -> str:
    """An instance id the *server* sent: a UUID, or a ``bad_response`` error. Server ids become
    file names (saved keys, passwords) and URL paths, so nothing else may pass."""
    from .errors import ComputeError

    if isinstance(value, str) and len(value) <= 64:
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            pass
    shown = repr(value)[:80]
    raise ComputeError(
        f"The server sent {what} {shown}, which is not a UUID; refusing to use it.",
        code="bad_response",
        details={"field": what, "received": shown},
    )


_MANAGEMENT_KEY = re.compile(r"^[A-Za-z0-9_.-]{8,256}$")


def management_key(value) -> str:
    """A management API key the server handed out: one printable token (it is stored in a file
    and later sent as a header), else ``bad_response``."""
    from .errors import ComputeError

    if isinstance(value, str) and _MANAGEMENT_KEY.match(value):
        return value
    raise ComputeError("The server sent a management key that is not a plain token; refusing to store it.", code="bad_response")


def plan_id(value: str) -> str:
    v = value.strip()
    if not _PLAN.match(v):
        raise UsageError(
            f"Plan id {value!r} is not well formed.",
            hint="Plan ids look like vc2-1c-1gb, vcg-a100-1c-2g-6gb or do:s-1vcpu-1gb; see browse_plans.py.",
        )
    return v


def region_id(value: str) -> str:
    v = value.strip().lower()
    if not _REGION.match(v):
        raise UsageError(f"Region id {value!r} is not well formed.", hint="Region ids look like lax, ewr or nyc3; see browse_regions.py.")
    return v


def label(value: str) -> str:
    if not _LABEL.match(value):
        raise UsageError("Label must be 1-64 printable characters.")
    return value


def hours(value: int, what: str = "duration") -> int:
    if value < MIN_HOURS:
        raise UsageError(f"The {what} must be at least {MIN_HOURS} hours, got {value}.", hint="The API's minimum prepaid period is 24 hours.")
    return value


def api_key_id(value: str) -> str:
    v = value.strip()
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", v):
        raise UsageError(f"API key id {value!r} is not well formed.", hint="Use the id shown by list_api_keys.py.")
    return v
