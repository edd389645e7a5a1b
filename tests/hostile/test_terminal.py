"""Class 7: a server string never drives the terminal. Text output (``-o text``, tables,
progress, error lines) shows control characters, ANSI/OSC sequences and bidi overrides escaped;
the JSON output carries them byte-faithfully (JSON-escaped, as JSON does)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import SCRIPTS
from tests.hostile.stub import json_reply

EVIL = {
    "osc52": "\x1b]52;c;cm0gLXJmIH4K\x07",        # write the clipboard
    "title": "\x1b]0;owned\x1b\\",                 # set the window title
    "clear": "\x1b[2J\x1b[H",                      # clear the screen, cursor home
    "c1_csi": "\x9b31m",                           # the 8-bit CSI
    "cr": "ok\rFAKE",                              # overwrite the line
    "bell": "\x07",
    "bidi": "\u202egnp.exe",                       # right-to-left override
    "del": "\x7f",
}
RAW_CONTROL = [c for c in "\x1b\x07\x9b\r\x7f\u202e"]


def run(script, *args, env):
    return subprocess.run([sys.executable, str(SCRIPTS / script), *args], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def assert_inert(text: str):
    bad = [repr(c) for c in RAW_CONTROL if c in text]
    assert not bad, (bad, text)


@pytest.mark.parametrize("name", sorted(EVIL))
def test_labels_in_a_table_are_escaped_and_json_is_faithful(hostile, hostile_env, name):
    label = f"web{EVIL[name]}end"
    hostile.add_order(label=label)
    proc = run("list_instances.py", "-o", "text", env=hostile_env())
    assert proc.returncode == 0, proc.stderr
    assert_inert(proc.stdout + proc.stderr)
    assert "web" in proc.stdout and "end" in proc.stdout and ("\\x" in proc.stdout or "\\u" in proc.stdout)
    proc = run("list_instances.py", "-o", "json", env=hostile_env())
    assert json.loads(proc.stdout)["instances"][0]["label"] == label


def test_an_error_message_from_the_server_is_escaped(hostile, hostile_env):
    hostile.override("GET", "/compute/instances", json_reply(500, {"error": {"message": "down" + "".join(EVIL.values())}}))
    proc = run("list_instances.py", "-o", "text", env=hostile_env(COMPUTE_TIMEOUT="5"))
    assert proc.returncode == 1
    assert_inert(proc.stderr)
    assert "error (server_error)" in proc.stderr and "\\x1b]52" in proc.stderr
    proc = run("list_instances.py", "-o", "json", env=hostile_env(COMPUTE_TIMEOUT="5"))
    assert json.loads(proc.stdout)["error"]["message"].endswith("".join(EVIL.values()))


def test_details_text_and_a_newline_in_a_table_cell(hostile, hostile_env):
    order = hostile.add_order(label="a\nFAKE ROW\tx", plan="vc2-1c-1gb" + EVIL["clear"])
    proc = run("instance_details.py", order["id"], "-o", "text", env=hostile_env())
    assert proc.returncode == 0, proc.stderr
    assert_inert(proc.stdout)
    proc = run("list_instances.py", "-o", "text", env=hostile_env())
    rows = proc.stdout.splitlines()
    assert len(rows) == 2 and "a\\nFAKE ROW\\tx" in rows[1]  # one instance, one row


def test_a_destroy_prompt_is_escaped(hostile, hostile_env):
    # Not at a terminal, the confirmation is an error carrying the question: the same text.
    order = hostile.add_order(label="db" + EVIL["osc52"] + EVIL["bidi"])
    proc = run("destroy_instance.py", order["id"], "-o", "text", env=hostile_env())
    assert proc.returncode == 3
    assert_inert(proc.stderr)
    assert "Destroy" in proc.stderr
    assert not hostile.received("DELETE")


def test_progress_lines_are_escaped(hostile, hostile_env):
    # --wait reports each failed poll on stderr, quoting the server's error message.
    def flaky(req, honest):
        return json_reply(503, {"error": {"message": "busy" + EVIL["osc52"] + EVIL["clear"] + EVIL["bidi"]}})

    hostile.override("GET", r"/compute/instances/[^/]+", flaky, times=3)  # one poll: a GET and its two retries
    proc = run("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes", "--wait", "--poll-interval", "0.2", env=hostile_env())
    assert proc.returncode == 0, proc.stderr
    assert "busy" in proc.stderr and "\\x1b]52" in proc.stderr, proc.stderr
    assert_inert(proc.stderr)
