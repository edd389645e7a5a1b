"""ssh_exec.py: one command on an instance over SSH, one JSON document back.

How the remote command is formed from ``COMMAND...`` (the remote login shell runs it, as with
``ssh``): one argument is sent as it is, a shell command line (pipes, ``&&``, redirections
work; quote it once for your local shell); several arguments are each quoted for a POSIX shell
and joined, so the remote program receives exactly those words (plain ``ssh`` would join them
with spaces and let the remote shell split them again). ``remote_command`` in the output is the
exact string sent.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from .. import cli, cmdline, validate
from ..cli import Output
from ..errors import EXIT_WAIT_TIMEOUT, ComputeError, UsageError
from ..errors import UsageError as _Usage
from ..instances import NO_IP, normalized_state
from ..ssh import hostkeys
from ..ssh import run as sshrun
from ..ssh.keys import identity_for
from ..validate import is_host, is_port, shown

MAX_COMMAND = 64 * 1024
PASSWORD_ONLY = "one_time_password_fallback"  # the order's access_method for a machine made without a key
MAX_TIMEOUT = 24 * 3600.0


class CommandTimeout(ComputeError):
    """The command did not finish within ``--timeout``; the partial output is in the details."""

    code = "command_timeout"
    exit_code = EXIT_WAIT_TIMEOUT


def add_command_argument(p) -> None:
    """COMMAND: the positional words, and every word after the first ``--`` exactly as given
    (argparse alone would read a ``-a`` there as one of our options, or refuse words after an
    option). The instance id may come before the ``--`` or be its first word (the MCP server
    puts every positional after it)."""
    p.add_argument("command", nargs="*", metavar="COMMAND", help="the command to run (after --)")
    parse = p.parse_known_args

    def parse_known_args(args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if "--" not in args:
            return parse(args, namespace)
        i = args.index("--")
        left, rest = args[:i], args[i + 1 :]
        try:
            ns, extras = parse(left, namespace)
        except _Usage:
            if not rest:
                raise
            ns, extras = parse([*left, "--", rest[0]], namespace)  # the id is the first word after --
            rest = rest[1:]
        ns.command = [*(ns.command or []), *rest]
        return ns, extras

    p.parse_known_args = parse_known_args


def remote_command(words: list[str]) -> str:
    """The string sent as the remote command (see the module docstring)."""
    if not words or not "".join(words).strip():
        raise UsageError("Give the command to run after the instance id, e.g. ssh_exec.py ID -- uname -a.", code="no_command")
    if any("\0" in w for w in words):
        raise UsageError("The command contains a NUL character, which cannot be sent.")
    text = words[0] if len(words) == 1 else shlex.join(words)
    if len(text.encode()) > MAX_COMMAND:
        raise UsageError(f"The command is longer than {MAX_COMMAND // 1024} KiB; put it in a file and pass it with --stdin-file (e.g. ssh_exec.py ID --stdin-file job.sh -- sh -s).")
    return text


def _readable_file(value: str | None, flag: str) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise UsageError(f"{flag} {value}: no readable file there.")
    return path.resolve()


def _target_of(order: dict) -> tuple[str, int]:
    """The host and port to connect to: from the order, each checked before it reaches an argv
    (an IP address or DNS name; a port 1-65535). A malformed one is ``bad_response``, whatever
    state the record claims: a hostile address must be named, not read as "no address yet"."""
    raw = order.get("ip_address") or order.get("main_ip")
    port = order.get("ssh_port")
    port = 22 if port is None else port
    if raw not in NO_IP and not is_host(raw):
        raise ComputeError(f"The server sent {shown(raw)} as the instance's address, which is not an IP address or a DNS name; refusing to connect.", code="bad_response")
    if not is_port(port):
        raise ComputeError(f"The server sent {shown(port)} as the SSH port, which is not an integer from 1 to 65535; refusing to connect.", code="bad_response")
    return raw, port




def ssh_exec(ctx):
    a = ctx.args
    iid = validate.instance_id(a.instance_id)
    command = remote_command(list(a.command))
    if not 0 < a.command_timeout <= MAX_TIMEOUT:
        raise UsageError(f"--timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds.")
    if not 0 < a.max_output <= sshrun.MAX_CAP:
        raise UsageError(f"--max-output must be from 1 to {sshrun.MAX_CAP} bytes.")
    if not validate.is_posix_user(a.user):
        raise UsageError(f"--user {a.user!r} is not a plain POSIX user name.")
    identity = _readable_file(a.identity, "--identity")
    if identity is None:  # an instance given the skill's own key (--ssh-key auto) logs in with it

        auto = identity_for(ctx.state, iid)
        identity = Path(auto) if auto else None
    stdin = _readable_file(a.stdin_file, "--stdin-file")
    client_name = sshrun.pick_client(a.client)

    order = ctx.client.get_instance(iid)
    host, port = _target_of(order)
    if host not in NO_IP:  # before any socket to it: the key scan and the login both go to the checked address
        host = sshrun.checked_address(host, port, base_url=ctx.settings.base_url, allow_private=a.allow_private_address)
    state = normalized_state(order)
    if state != "running":
        raise ComputeError(
            f"Instance {iid} is {state}, not running: there is nothing to log into yet." if state == "provisioning" else
            f"Instance {iid} is {state}: commands run only on a running instance.",
            code="instance_not_running",
            details={"instance_id": iid, "state": state},
            retryable=state in ("provisioning", "resizing"),
            hint=f"Wait for it: provision.py --wait-ssh, or {cmdline.command('instance_details.py', iid)} until it is running." if state in ("provisioning", "resizing") else None,
        )
    keys = hostkeys.HostKeys(ctx.settings.state_dir)
    pub = hostkeys.published(order)
    pins = keys.pinned(iid)
    probe = hostkeys.scanner("openssh" if client_name == "openssh" else "python") or hostkeys.scanner()

    def presented() -> list:
        return probe(host, port, key_type=pub.type) if probe is not None else []

    if pins and not a.accept_host_key_change:
        # The client checks the pin itself during the connection (StrictHostKeyChecking).
        host_key = {"fingerprint": pins[0].fingerprint, "type": pins[0].type, "status": "matched", "verified_by": "pin",
                    "known_hosts_file": str(keys.file(iid)), "host_key_alias": keys.alias(iid)}
    else:
        if probe is None:
            raise ComputeError("Cannot read the machine's host key: neither ssh-keyscan nor asyncssh is installed.", code="ssh_client_missing",
                               hint="Install the OpenSSH client or the Python package asyncssh.")
        keys_now = presented()
        if not keys_now:
            raise ComputeError(
                f"No SSH key exchange with {host}:{port}: the machine's SSH server does not answer yet.",
                code="ssh_unreachable",
                retryable=True,
                details={"instance_id": iid, "host": host, "port": port},
                hint="Wait until it is up (provision.py --wait-ssh) and try again.",
            )
        host_key = keys.check(iid, order, keys_now, accept_change=a.accept_host_key_change)
    if host_key["status"] != "matched":
        ctx.progress(f"host key {host_key['fingerprint']} ({host_key['type']}) {host_key['status']}, verified by {host_key['verified_by']}")

    # A machine made without a key opens only to its one-time root password, which this command never
    # types: with no key to offer, say so now (the host key is pinned above, as the ssh block's note
    # promises) instead of a login that can only be refused.
    password_only = order.get("access_method") == PASSWORD_ONLY
    if password_only and identity is None:
        raise _password_only(iid, None, {"instance_id": iid, "access_method": PASSWORD_ONLY, "host_key": host_key})
    target = sshrun.Target(host, port, a.user, keys.file(iid), keys.alias(iid), identity)
    res = sshrun.run(client_name, target, command, stdin=stdin, timeout=a.command_timeout, cap=a.max_output)
    connection = {"host": host, "port": port, "user": a.user, "client": res.client}
    if res.failure == "host_key":
        raise hostkeys.changed(iid, keys.pinned(iid), presented(), pub, keys.file(iid))
    if res.failure == "auth" and password_only:
        raise _password_only(iid, identity, {"instance_id": iid, "access_method": PASSWORD_ONLY, "host_key": host_key,
                                             "connection": connection, "client_log": res.log[-600:]})
    if res.failure:
        raise _failure(iid, res, connection, identity)
    doc = {
        "instance_id": iid,
        "command": list(a.command),
        "remote_command": command,
        "exit_status": res.exit_status,
        "signal": res.signal,
        "stdout": res.stdout.text(),
        "stderr": res.stderr.text(),
        "truncated": {"stdout": res.stdout.truncated, "stderr": res.stderr.truncated},
        "bytes": {"stdout": res.stdout.total, "stderr": res.stderr.total},
        "duration_s": res.duration_s,
        "host_key": host_key,
        "connection": connection,
    }
    if res.timed_out:
        raise CommandTimeout(
            f"The command did not finish within {a.command_timeout:g} s; the connection was closed.",
            details={k: doc[k] for k in ("instance_id", "remote_command", "stdout", "stderr", "truncated", "bytes", "duration_s", "host_key", "connection")},
            hint="The output so far is in details. A command that ignores its closed connection may still run on the machine: "
            "wrap long jobs in 'timeout N ...' or start them in the background (nohup ... &) and poll.",
        )
    cut = [k for k in ("stdout", "stderr") if doc["truncated"][k]]
    text = doc["stdout"] + ("" if doc["stdout"].endswith("\n") or not doc["stdout"] else "\n")
    if doc["stderr"]:
        text += "--- stderr ---\n" + doc["stderr"] + ("" if doc["stderr"].endswith("\n") else "\n")
    text += (f"[exit {res.exit_status if res.exit_status is not None else 'signal ' + str(res.signal)}, {res.duration_s:g} s"
             + (f", {' and '.join(cut)} cut at {a.max_output} bytes" if cut else "") + f", host key {host_key['fingerprint']}]")
    return Output(doc, text)


def _password_only(iid: str, identity: Path | None, details: dict) -> ComputeError:
    """A machine provisioned without an SSH key: only its one-time root password opens it, and
    revealing that is a once-only act, so the hint is for the human."""
    why = ("it was provisioned without an SSH key, and accepts only its one-time root password, which ssh_exec.py never types "
           "(it logs in with keys only, never at a password prompt)")
    return ComputeError(
        (f"Instance {iid} has no SSH key to log in with: {why}. Nothing was run." if identity is None else
         f"Instance {iid} refused the key {identity}: {why}. Nothing was run."),
        code="ssh_password_only",
        details=details,
        hint=(f"Tell the human. They can reveal the root password once with {cmdline.command('get_one_time_password.py', iid)} "
              "(saved 0600 in the state folder, only its path printed), log in with the ssh command it prints and add a public key "
              "to /root/.ssh/authorized_keys; then ssh_exec.py works with --identity <that private key>. Or provision a new machine "
              "with the skill's own key (provision.py ... --ssh-key auto; ssh_exec.py then logs in by itself), move what matters, "
              "and destroy this one."),
    )


def _failure(iid: str, res, connection: dict, identity: Path | None) -> ComputeError:
    log = res.log[-600:]
    if res.failure == "auth":
        return ComputeError(
            f"Instance {iid} refused the login as {connection['user']} (no accepted key).",
            code="ssh_auth_failed",
            details={"instance_id": iid, "connection": connection, "client_log": log},
            hint=("Pass the private key whose public half was given at provision with --identity FILE." if identity is None else
                  f"{identity} is not the key this instance accepts (or it is passphrase-protected: load it into ssh-agent and drop --identity).")
            + " An instance provisioned without a key accepts only its one-time password, which ssh_exec.py does not use.",
        )
    if res.failure == "connect":
        return ComputeError(
            f"Could not connect to {connection['host']}:{connection['port']}.",
            code="ssh_unreachable",
            retryable=True,
            details={"instance_id": iid, "connection": connection, "client_log": log},
            hint="Check that the instance is running (instance_details.py) and try again.",
        )
    return ComputeError("The SSH client failed before the command ran.", code="ssh_failed", details={"instance_id": iid, "connection": connection, "client_log": log})


# -- ssh_exec.py: its parser (the script and the MCP server both build it here) ------

SSH_EXEC_HELP = """Run one command on an instance over SSH and print one JSON document: exit_status, stdout and
stderr (each capped, with truncated flags), duration_s, and the host key the machine presented
(pinned in the state folder on first contact; a later change is refused, exit 3)."""


def ssh_exec_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "ssh_exec.py",
        SSH_EXEC_HELP
        + "\n\nCOMMAND is run by the remote login shell, as with ssh. One argument is sent as it is: a shell command"
        " line (pipes, &&, redirections work; quote it once for your local shell). Several arguments are each quoted"
        " for a POSIX shell and joined, so the remote program receives exactly those words. Put -- before COMMAND"
        " so its options are not read as ours. remote_command in the output is the exact string sent.",
        examples=(
            "python scripts/ssh_exec.py 3f1c2a9e-0000-4000-8000-000000000001 -- uname -a\n"
            "python scripts/ssh_exec.py 3f1c2a9e-0000-4000-8000-000000000001 --identity ~/.ssh/id_ed25519 -- 'df -h / && free -m'\n"
            "python scripts/ssh_exec.py 3f1c2a9e-0000-4000-8000-000000000001 --stdin-file job.sh --timeout 600 -- sh -s"
        ),
        http_timeout=False,
    )
    p.add_argument("instance_id", help="the instance UUID (from list_instances.py)")
    add_command_argument(p)
    g = p.add_argument_group("ssh")
    g.add_argument("--timeout", dest="command_timeout", type=float, default=sshrun.DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="stop the command (close the connection) after this long, connecting included (default 120); exit 5 with the output so far")
    g.add_argument("--max-output", type=int, default=sshrun.DEFAULT_CAP, metavar="BYTES",
                   help="keep at most this much of stdout and of stderr each (default 65536); the rest is counted and dropped, truncated says so")
    g.add_argument("--user", default="root", help="log in as this user (default root, the instances' login user)")
    g.add_argument("--identity", metavar="FILE", help="private key file to log in with (default: the skill's own key for an instance made with --ssh-key auto); the only key offered: never the SSH agent or your default keys")
    g.add_argument("--stdin-file", metavar="FILE", help="feed this file to the command's stdin (default: empty stdin)")
    g.add_argument("--client", choices=sshrun.CLIENTS, default="auto", help="SSH client: the system ssh (openssh), asyncssh (python), or auto (default: ssh when installed)")
    g.add_argument("--accept-host-key-change", action="store_true",
                   help="a human's decision only: replace the pinned host key with the one the machine presents now (it must match the key the API publishes, when it publishes one)")
    g.add_argument("--allow-private-address", action="store_true",
                   help="a human's decision only: connect even though the server gave a loopback, private, link-local, CGNAT, multicast or "
                   "reserved address (allowed without it when the API base URL is itself loopback, as for the sandbox)")
    return p
