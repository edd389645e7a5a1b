"""Typed errors with a stable code, the HTTP status, the server's body and a
retry hint. The CLI maps them to exit codes in one place (``cli.py``)."""

from __future__ import annotations

from typing import Any

# Documented exit codes (README, SKILL.md).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_POLICY = 3
EXIT_PAYMENT_UNKNOWN = 4
EXIT_WAIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130


class ComputeError(Exception):
    """Base error. ``code`` is stable and machine-readable."""

    code = "error"
    exit_code = EXIT_ERROR
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Any = None,
        retryable: bool | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable
        self.status = status
        self.details = details
        self.hint = hint

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "details": self.details,
            "retryable": self.retryable,
        }
        if self.hint:
            d["hint"] = self.hint
        return d


class UsageError(ComputeError):
    """Bad flags or arguments; nothing was sent."""

    code = "usage_error"
    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """Missing or inconsistent settings (keys, URLs, env file)."""

    code = "config_error"


class PolicyError(ComputeError):
    """Refused by a local safety policy (spend cap, price, payee, asset)."""

    code = "policy_refused"
    exit_code = EXIT_POLICY


class ConfirmationRequired(PolicyError):
    """A paying or destructive action needs ``--yes`` (or a terminal)."""

    code = "confirmation_required"


class ApiError(ComputeError):
    """The API answered with an error status."""

    code = "api_error"


class AuthError(ApiError):
    code = "unauthorized"


class NotFound(ApiError):
    code = "not_found"


class Conflict(ApiError):
    code = "conflict"


class PaymentRequired(ApiError):
    """402 that we could not or would not answer (no usable offer, rejected payment)."""

    code = "payment_required"


class ServerError(ApiError):
    code = "server_error"


class NetworkError(ComputeError):
    """The request could not be completed at the transport level."""

    code = "network_error"


class PaymentOutcomeUnknown(ComputeError):
    """A signed payment left this machine and we cannot tell whether it settled.

    Never sign another payment after this: reconcile instead."""

    code = "payment_outcome_unknown"
    exit_code = EXIT_PAYMENT_UNKNOWN


class Interrupted(ComputeError):
    """Ctrl-C, when there is something to say with it (e.g. a payment that already settled)."""

    code = "interrupted"
    exit_code = EXIT_INTERRUPTED


class WaitTimeout(ComputeError):
    """``--wait`` ran out of time; the resource exists and is paid for."""

    code = "wait_timeout"
    exit_code = EXIT_WAIT_TIMEOUT


def error_for_status(status: int) -> type[ApiError]:
    if status == 401 or status == 403:
        return AuthError
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status == 402:
        return PaymentRequired
    if status >= 500:
        return ServerError
    return ApiError
