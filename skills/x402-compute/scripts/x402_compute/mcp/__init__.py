"""The MCP server: the scripts' commands as MCP tools, one more front door beside the scripts.
Its rooms: ``tools`` (the table), ``schemas``, ``approval``, ``runner`` (one call), ``app`` (the server).

A tool call becomes the argv of the tool's script (built from its snake_case arguments), parsed
by the command's parser and run by its handler (both from ``commands/``, the pair the script uses)
through ``cli.execute``. Only the Context differs: its ``confirm`` asks the MCP client's human (elicitation) instead of a
terminal, its ``progress`` also sends MCP progress notifications, and its ``sleep`` (the poll
interval of ``--wait``) ends at once when the client cancels. So every check, cap, journal entry
and error is the script's own, and a result's structured content is the script's JSON document.

What this front door adds, because an MCP host is not a human at a terminal, and the model is
not the human (issue 19):
- spending tools refuse with ``spending_disabled`` (nothing signed, nothing sent) unless the server
  was started with ``COMPUTE_MCP_ALLOW_SPEND=1``;
- with spending on, each payment is the human's to approve, through elicitation. A client that
  cannot ask gets ``approval_unavailable`` (nothing signed) unless the human started the server
  with ``COMPUTE_MCP_APPROVAL=unattended``: then the cap, the budget and the allow-lists are the
  only bounds. ``COMPUTE_MCP_CONFIRM_ABOVE_USD`` skips the question only below it and only to a
  payee already pinned. A payee change, a recipient account created at the wallet's cost, or a
  price the catalog could not check is always asked, and refused when the client cannot ask;
  a ``confirm_quote`` the model passes is shown to the human, never taken as the approval;
- no human-only decision is a tool argument (``cli.HUMAN_ONLY``: ``--yes``, ``--max-usd``,
  ``--accept-payee-change``, ...), nor any option naming a local file (``cli.names_a_path``):
  ``user_data`` is inline text, bounded and refused when it looks like a key or a secret of the
  skill's; the SSH identity is the server's ``--identity`` or the skill's own key;
- ``--http`` serves only requests carrying the server's bearer token (401 before any tool runs);
- destroy and revoke need ``confirm: true``; secrets never leave in a result (the one-time password
  stays in its 0600 file, a new API key is saved and shown as its last four characters);
- options that point the wallet at another server (``--base-url``, ``--env-file``) are not tool
  arguments: the server's own command line and environment set them;
- an unknown payment outcome (exit 4) is the tool error ``payment_unknown``, which tells the
  model to call ``reconcile`` and never to pay for that order again;
- one paying tool at a time: handlers run in worker threads here, where in the scripts each
  payment has a process of its own.

Handlers block (HTTP, waiting), so each call runs in a worker thread; the event loop only relays.
Over stdio, stdout carries protocol messages only; logs and progress lines go to stderr.
"""

from .app import INSTRUCTIONS, ServerConfig, main, parser
from .approval import approval_message, approved_usd, quote_terms
from .tools import DESTRUCTIVE, READ, SERVER_OPTIONS, SPEND, WRITE, ToolSpec, all_tools

__all__ = ["main", "parser", "ServerConfig", "INSTRUCTIONS", "approval_message", "ToolSpec", "all_tools", "READ", "WRITE",
           "DESTRUCTIVE", "SPEND", "SERVER_OPTIONS", "quote_terms", "approved_usd"]
