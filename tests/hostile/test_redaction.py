"""Class 8: redaction by meaning. A payment header or signature a server echoes back, in any
spelling the client itself produces (base64 with or without padding, URL-safe, the decoded JSON,
the bare signature with or without 0x, any letter case), never reaches stdout or stderr; nor
does it when it sits in a journal entry's ``reason`` and another process (reconcile.py) prints it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from tests.helpers import SCRIPTS, state_entries
from tests.hostile.stub import json_reply, unb64json


def run(script, *args, env):
    return subprocess.run([sys.executable, str(SCRIPTS / script), *args], env=env, capture_output=True, text=True, timeout=90,
                          stdin=subprocess.DEVNULL)


def spellings(header_value: str) -> dict[str, str]:
    doc = unb64json(header_value)
    sig = doc["payload"]["signature"]
    bare = sig[2:]
    return {
        "header": header_value,
        "unpadded": header_value.rstrip("="),
        "urlsafe": header_value.replace("+", "-").replace("/", "_").rstrip("="),
        "decoded": json.dumps(doc),
        "signature": sig,
        "bare": bare,
        "upper": bare.upper(),
        "0X-upper": "0X" + bare.upper(),
    }


def echo_everything(req, honest):
    _, value = req.payment
    forms = spellings(value)
    text = " | ".join(forms.values())
    return json_reply(402, {"error": f"payment refused: {text}", "details": {"reason": f"bad signature {forms['upper']} in {value}",
                                                                          "echo": forms, "decoded": unb64json(value)}})


def secrets_seen(forms: dict[str, str], *texts: str) -> list[str]:
    blob = "\n".join(texts)
    low = blob.lower()
    return [name for name, v in forms.items() if name != "decoded" and v.lower() in low]


@pytest.mark.parametrize("version", [1, 2])
def test_an_echoed_payment_never_reaches_the_output_or_reconcile(hostile, hostile_env, tmp_path, version):
    hostile.x402_versions = (version,)
    hostile.override("POST", "/compute/provision", echo_everything, when="paid")
    env = hostile_env()
    proc = run("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes", "-v", env=env)
    assert proc.returncode != 0
    [paid] = hostile.paid_requests()
    forms = spellings(paid.payment[1])
    assert not secrets_seen(forms, proc.stdout, proc.stderr), (proc.stdout, proc.stderr)
    doc = json.loads(proc.stdout)
    assert "redacted" in json.dumps(doc)  # the server's words are kept, the secrets masked

    # The entry on disk holds the echo (0600): a new process must not print it either.
    [entry] = state_entries(tmp_path / "home" / "state")
    assert forms["upper"] in json.dumps(entry), "the echo should be in the stored reason, or this test proves nothing"
    for args in ([entry["id"]], ["--list"], [entry["id"], "-o", "text"], ["--list", "-o", "text"]):
        proc = run("reconcile.py", *args, env=env)
        assert not secrets_seen(forms, proc.stdout, proc.stderr), (args, proc.stdout, proc.stderr)


def test_a_signature_echoed_in_another_case_is_redacted(hostile, hostile_env):
    def echo_auth(req, honest):
        sig = req.headers["x-auth-signature"]
        return json_reply(400, {"error": {"message": f"bad {sig.upper()} / {sig[2:]} / {base64.b64encode(sig.encode()).decode()}"}})

    hostile.override("GET", "/compute/instances", echo_auth)
    for mode in ("json", "text"):
        proc = run("list_instances.py", "-o", mode, env=hostile_env())
        sig = hostile.received("GET", "/compute/instances")[-1].headers["x-auth-signature"]
        out = (proc.stdout + proc.stderr).lower()
        assert sig[2:].lower() not in out and "redacted" in out, out
