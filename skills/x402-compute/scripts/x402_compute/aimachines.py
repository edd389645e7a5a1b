"""AI Machines: a GPU instance that comes up serving an LLM behind an OpenAI-compatible API.

The hosted service (upstream x402-compute 1.12+, references/ai-machines.md) puts
``metadata.ai = {model_id, api_key, port: 8080, endpoint}`` on the order; the machine runs
llama-server on that port (``GET /v1/models``, ``POST /v1/chat/completions``,
``Authorization: Bearer <api_key>``) and the endpoint is ``http://<ip>:<port>/v1`` once the IP lands.

What this module holds, for provision, the instance listings and ai_chat alike:

- the API key is shown once, in the paid answer: it is saved 0600 in the state folder under
  ``ai-keys/<instance id>.key`` (a checked UUID, never a server string), never overwritten (a
  different key for the same machine goes beside it, ``<instance id>.key.2``, ...), never printed (registered with the scrubber; only its last four characters are shown);
- the endpoint is only ever ``http://<the instance's own address>:<port>/v1``, built from the
  instance record; an endpoint the server names that is anything else is refused, so the key
  never goes anywhere but to the machine it belongs to. That is plain http to the machine's IP:
  prompts, replies and the key cross the network unencrypted (what the service offers);
- every exchange with the machine is bounded in time and size, follows no redirect, and takes
  only a 2xx JSON answer.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable

from . import cmdline, redact
from .errors import ApiError, ComputeError, NetworkError, NotFound, UsageError, WaitTimeout
from .instances import normalized_state, public_ip
from .ssh.wait import backoff
from .validate import is_port, shown

DEFAULT_PORT = 8080
KEY_FOLDER = "ai-keys"
MAX_REPLY_BYTES = 1024 * 1024  # a chat answer or a model list; a bigger one is cut off unread
MAX_PROMPT_CHARS = 64 * 1024
PLAIN_HTTP_NOTE = ("plain http to the machine's IP: prompts, replies and the API key cross the network unencrypted "
                   "(the service serves the model on http://<ip>:8080/v1); send nothing you would not send in the clear")
MODES = ("private", "grid")

_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
_API_KEY = re.compile(r"[\x21-\x7e]{8,512}")  # one printable token: it goes into a header and a file


def model_id(value: str) -> str:
    """``--model-id``: the model the machine serves (e.g. llama-3.2-3b), checked before anything is sent."""
    v = (value or "").strip()
    if not _MODEL_ID.fullmatch(v):
        raise UsageError(
            f"--model-id {value!r} is not a model id (letters, digits and . _ : / @ + -, at most 128 characters).",
            hint="Model ids look like llama-3.2-3b.",
        )
    return v


def request_object(model: str, mode: str) -> tuple[str, dict]:
    """The provision body's nested object: ``ai_machine`` (private) or ``deploy_node`` (grid)."""
    if mode == "private":
        return "ai_machine", {"model_id": model, "mode": "private"}
    return "deploy_node", {"model_id": model}


# -- what the server says about an AI machine ----------------------------------------------------


def _ai(order: dict) -> dict | None:
    meta = order.get("metadata") if isinstance(order, dict) else None
    ai = meta.get("ai") if isinstance(meta, dict) else None
    return ai if isinstance(ai, dict) else None


def is_ai_machine(order: dict) -> bool:
    return _ai(order) is not None


def api_key_in(order: dict) -> str | None:
    """The one-time API key of a (paid) answer's order, checked and registered as a secret at once,
    or None when there is none. A malformed key is ``bad_response``."""
    ai = _ai(order)
    key = ai.get("api_key") if ai else None
    if key is None:
        return None
    if not isinstance(key, str) or not _API_KEY.fullmatch(key):
        if isinstance(key, str):
            redact.register(key)
        raise ComputeError("The server sent an AI Machine API key that is not one printable token; refusing to store or send it.", code="bad_response")
    redact.register(key)
    return key


def endpoint_of(order: dict) -> dict:
    """``{"model_id", "port", "endpoint", "unavailable"}`` for an AI machine's order.

    ``endpoint`` is ``http://<ip>:<port>/v1`` for the instance's own (checked) address and port,
    or None with ``unavailable`` saying why: no IP yet, a malformed port, or a server-named
    endpoint that points anywhere else (then the key is never sent)."""
    ai = _ai(order) or {}
    model = ai.get("model_id")
    model = model if isinstance(model, str) and _MODEL_ID.fullmatch(model) else None
    port = ai.get("port", DEFAULT_PORT)
    out: dict[str, Any] = {"model_id": model, "port": port if is_port(port) else None, "endpoint": None, "unavailable": None}
    if not is_port(port):
        out["unavailable"] = f"the server's AI port {shown(port)} is not an integer from 1 to 65535"
        return out
    ip = public_ip(order)
    if ip is None:
        out["unavailable"] = "no IP address yet"
        return out
    host = f"[{ip}]" if ":" in ip else ip
    expected = f"http://{host}:{port}/v1"
    named = ai.get("endpoint")
    if named not in (None, "") and (not isinstance(named, str) or named.rstrip("/") != expected):
        out["unavailable"] = f"the server names the endpoint {shown(named)}, not {expected} (the instance's own address): the key is not sent there"
        return out
    out["endpoint"] = expected
    return out


# -- the saved key -----------------------------------------------------------------------------


def key_file(state, instance_id: str) -> Path:
    return state._instance_file(KEY_FOLDER, instance_id, ".key")


def save_key(state, instance_id: str, key: str) -> tuple[Path, str | None]:
    """Save the key 0600, never overwriting one already there (``State.keep_key``, the rule of the
    management keys). Returns (path, note): the note says, when a different key is already saved
    for this id, that the first was kept (ai_chat uses it) and where the new one went
    (``<id>.key.2``, ...)."""
    path, second = state.keep_key(KEY_FOLDER, instance_id, key)
    if second is None:
        return path, None
    return path, (f"a different AI key was already saved in {path}: it was kept (ai_chat uses it) and the new key was saved "
                  f"beside it in {second} (0600); ask the service which one is valid")


def saved_key(state, instance_id: str) -> str | None:
    try:
        key = key_file(state, instance_id).read_text().strip() or None
    except FileNotFoundError:
        return None
    redact.register(key)
    return key


def block(state, order: dict, *, key: str | None = None, key_path: Path | None = None, note: str | None = None) -> dict | None:
    """The ``ai`` block of an instance (None when it is not an AI machine): model_id, endpoint,
    port, api_key_file and api_key_last4 (from ``key`` just saved, else the saved file), note."""
    if not is_ai_machine(order):
        return None
    try:
        api_key_in(order)  # a key the server shows again (in a listing) is scrubbed from every output too
    except ComputeError:
        pass
    e = endpoint_of(order)
    status = normalized_state(order)
    if status in ("destroyed", "expired"):
        e.update(endpoint=None, unavailable=f"the instance is {status}")
    iid = order.get("id")
    if key is None and isinstance(iid, str):
        try:
            key = saved_key(state, iid)
            key_path = key_file(state, iid) if key else None
        except ComputeError:
            key = None
    notes = [PLAIN_HTTP_NOTE]
    if e["unavailable"]:
        notes.insert(0, f"endpoint not usable yet: {e['unavailable']}")
    if key is None:
        notes.append("no API key saved here: it is shown once, to the run that provisioned the machine")
    if note:
        notes.append(note)
    return {
        "model_id": e["model_id"],
        "endpoint": e["endpoint"],
        "port": e["port"],
        "api_key_file": str(key_path) if key_path else None,
        "api_key_last4": key[-4:] if key else None,
        "note": "; ".join(notes),
    }


# -- talking to the machine --------------------------------------------------------------------


def exchange(endpoint: str, key: str, method: str, path: str, *, body: dict | None = None, timeout: float = 30.0,
             limit: int = MAX_REPLY_BYTES) -> Any:
    """One bounded exchange with the machine's OpenAI-compatible API; the decoded JSON of a 2xx.

    ``endpoint`` must come from ``endpoint_of`` (the instance's own address): the key is sent
    nowhere else. No redirect is followed; any other status is an error naming it."""
    from .api.http import DeadlineExceeded, TransportError, bounded_request, loads, new_session

    redact.register(key)
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode("utf-8")
    url = endpoint + path
    session = new_session()
    try:
        resp = bounded_request(session, method, url, deadline=timeout, limit=limit, what=f"{method} {url}", data=data, headers=headers)
    except DeadlineExceeded:
        raise NetworkError(f"{method} {url}: no complete answer within {timeout:g} s.", code="ai_timeout", retryable=True) from None
    except TransportError as e:
        raise NetworkError(f"{method} {url}: {type(e).__name__}: the machine's model server did not answer.", code="ai_unreachable", retryable=True) from None
    finally:
        session.close()
    if not 200 <= resp.status < 300:
        detail = resp.text[:300]
        code = "ai_auth_refused" if resp.status in (401, 403) else "ai_error"
        raise ComputeError(f"{method} {url} answered HTTP {resp.status}.", code=code, status=resp.status, details={"body": detail},
                           retryable=resp.status in (429, 502, 503, 504))
    try:
        return loads(resp.content)
    except (ValueError, UnicodeDecodeError):
        raise ComputeError(f"{method} {url} answered {resp.status} without a JSON body.", code="ai_bad_response", status=resp.status) from None


def model_ids(doc: Any) -> list[str]:
    """The ids of a ``GET /v1/models`` answer (``{"data": [{"id": ...}]}``); ``ai_bad_response`` otherwise."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in data):
        raise ComputeError("GET /v1/models did not answer an OpenAI model list.", code="ai_bad_response", details={"received": shown(doc)})
    return [m["id"] for m in data]


def wait_ready(client, instance_id: str, key: str, *, timeout: float, interval: float, progress: Callable[[str], None],
               sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> tuple[dict, list[str]]:
    """Poll until the machine's endpoint answers ``GET /v1/models`` with the key: (the order, the
    model ids). The endpoint is read from the instance record each round. Raises WaitTimeout."""
    deadline = clock() + timeout
    pauses = backoff(interval)
    last = None
    order: dict = {"id": instance_id}
    while True:
        try:
            order = client.get_instance(instance_id) or order
        except (NetworkError, NotFound) as err:  # keep polling, as wait_for_instance does
            progress(f"waiting: {err.message}")
        except ApiError as err:
            if not err.retryable:
                raise
            progress(f"waiting: {err.message}")
        e = endpoint_of(order)
        why = e["unavailable"]
        if e["endpoint"]:
            try:
                return order, model_ids(exchange(e["endpoint"], key, "GET", "/models", timeout=max(1.0, min(10.0, deadline - clock()))))
            except ComputeError as err:
                if err.code == "ai_auth_refused":
                    raise
                why = err.message
        if why != last:
            progress(f"waiting for the model server of {instance_id}: {why}")
            last = why
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout(
                f"Timed out after {timeout:g} s waiting for the AI endpoint of {instance_id} to answer /v1/models ({why}). The machine exists and is paid for.",
                details={"instance_id": instance_id, "endpoint": e["endpoint"], "expires_at": order.get("expires_at")},
                hint=f"Check again later with {cmdline.command('instance_details.py', instance_id)}; do not provision again.",
            )
        sleep(min(next(pauses), remaining))
