#!/usr/bin/env python3
"""Run one command on an instance over SSH and print one JSON document: exit_status, stdout and
stderr (each capped, with truncated flags), duration_s, and the host key the machine presented
(pinned in the state folder on first contact; a later change is refused, exit 3)."""

from x402_compute import cli, sshrun
from x402_compute.commands import remote

p = cli.parser(
    "ssh_exec.py",
    __doc__
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
remote.add_command_argument(p)
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
handler = remote.ssh_exec

if __name__ == "__main__":
    cli.run(p, handler)
