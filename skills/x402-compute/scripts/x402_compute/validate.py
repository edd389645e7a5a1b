"""Checks on what goes into a URL path, a file name or a shell command.

Arguments are checked before any network call (a ``UsageError``, exit 2). Values the server
chose are checked before they are used as an id, a path component, a host, a port or a user
(a ``ComputeError`` with code ``bad_response``: the server, not the user, got it wrong).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import uuid
from typing import Any

from .errors import ComputeError, UsageError

_PLAN = re.compile(r"(do:)?[a-z0-9][a-z0-9-]{1,63}")
_REGION = re.compile(r"[a-z]{2,5}[0-9]{0,2}")
_LABEL = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,64}")
MIN_HOURS = 24


def instance_id(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except (ValueError, AttributeError):
        raise UsageError(
            f"Instance id must be a UUID (as shown by list_instances.py), got {value!r}."
        ) from None


_MANAGEMENT_KEY = re.compile(r"[A-Za-z0-9_.-]{8,256}")


def management_key(value) -> str:
    """A management API key the server handed out: one printable token (it is stored in a file
    and later sent as a header), else ``bad_response``."""
    if isinstance(value, str) and _MANAGEMENT_KEY.fullmatch(value):
        return value
    raise ComputeError("The server sent a management key that is not a plain token; refusing to store it.", code="bad_response")


def plan_id(value: str) -> str:
    v = value.strip()
    if not _PLAN.fullmatch(v):
        raise UsageError(
            f"Plan id {value!r} is not well formed.",
            hint="Plan ids look like vc2-1c-1gb, vcg-a100-1c-2g-6gb or do:s-1vcpu-1gb; see browse_plans.py.",
        )
    return v


def region_id(value: str) -> str:
    v = value.strip().lower()
    if not _REGION.fullmatch(v):
        raise UsageError(f"Region id {value!r} is not well formed.", hint="Region ids look like lax, ewr or nyc3; see browse_regions.py.")
    return v


def label(value: str) -> str:
    if not _LABEL.fullmatch(value):
        raise UsageError("Label must be 1-64 printable characters.")
    return value


def hours(value: int, what: str = "duration") -> int:
    if value < MIN_HOURS:
        raise UsageError(f"The {what} must be at least {MIN_HOURS} hours, got {value}.", hint="The API's minimum prepaid period is 24 hours.")
    return value


def api_key_id(value: str) -> str:
    v = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v):
        raise UsageError(f"API key id {value!r} is not well formed.", hint="Use the id shown by list_api_keys.py.")
    return v


# -- values the server chose ---------------------------------------------------------------------

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_POSIX_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,31}")  # never starts with "-": no option smuggling
SHOWN_CHARS = 80


def shown(value: Any) -> str:
    """A server value as an error message may quote it: escaped (repr) and truncated."""
    if isinstance(value, int) and value.bit_length() > 1024:  # repr() of a huge int is slow, or refused
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + f"... ({len(text)} characters)"


def bad_response(field: str, value: Any, expected: str, status: int | None = None) -> ComputeError:
    return ComputeError(
        f"The server sent {shown(value)} as {field}, which is not {expected}; refusing to use it.",
        code="bad_response",
        status=status,
        details={"field": field, "received": shown(value), "expected": expected},
    )


def is_uuid(value: Any) -> bool:
    """Whether ``value`` is an instance id as the API writes it (a UUID string)."""
    return isinstance(value, str) and bool(_UUID.fullmatch(value))


def server_instance_id(value: Any, field: str = "order.id", *, status: int | None = None) -> str:
    """An instance id the server sent, as the canonical lower-case UUID; ``bad_response`` otherwise.
    Only this form ever becomes a URL path segment or a file name."""
    if isinstance(value, str) and _UUID.fullmatch(value):
        return value.lower()
    raise bad_response(field, value, "a UUID", status)


def is_host(value: Any) -> bool:
    """An IP address, or a DNS name (letters, digits, hyphens; dot-separated labels)."""
    if not isinstance(value, str) or not value or len(value) > 253 or "%" in value:  # no IPv6 zone ids
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    labels = value[:-1].split(".") if value.endswith(".") else value.split(".")
    # an all-numeric name would be read as an IPv4 address by ssh, and it is not one
    return all(_DNS_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def is_posix_user(value: Any) -> bool:
    return isinstance(value, str) and bool(_POSIX_USER.fullmatch(value))


def close_matches(word: str, candidates, n: int = 3) -> list[str]:
    """Up to ``n`` catalog ids close to a mistyped ``word`` (difflib's ratio, at least 0.6), best
    first: the ``did_you_mean`` of an unknown plan, region or OS id."""
    pool = sorted({str(c) for c in candidates if isinstance(c, (str, int)) and not isinstance(c, bool) and str(c)})
    return difflib.get_close_matches(str(word), pool, n=n, cutoff=0.6)


def did_you_mean_hint(matches: list[str], fallback: str) -> str:
    """``Did you mean a, b or c?`` followed by ``fallback``; just ``fallback`` without matches."""
    if not matches:
        return fallback
    listed = matches[0] if len(matches) == 1 else ", ".join(matches[:-1]) + " or " + matches[-1]
    return f"Did you mean {listed}? {fallback}"
