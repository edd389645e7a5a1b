"""One tool call: the command run in a worker thread with an MCP context (progress, sleep, the human's
approval through elicitation), bridged to the server's event loop."""

from __future__ import annotations

import hashlib
import json
import math
import queue
import threading
import time

from .. import cli, redact
from ..errors import EXIT_PAYMENT_UNKNOWN, ComputeError, ConfirmationRequired, PolicyError, UsageError
from ..payments.quotes import Quotes
from ..ssh.keys import own_fingerprint
from ..state import State
from .approval import (
    APPROVAL_SCHEMA,
    APPROVAL_TIMEOUT,
    approval_message,
    approved_usd,
    argv_with,
    decision_reason,
    grant_key,
    pin_status,
    quote_terms,
)
from .schemas import INLINE_MAX_BYTES
from .tools import HUMAN_DECISIONS, SPEND


class McpContext(cli.Context):
    """The scripts' Context, with the terminal replaced by the MCP client."""

    def __init__(self, args: argparse.Namespace, run: "Run") -> None:
        super().__init__(args)
        self._run = run

    @staticmethod
    def interactive() -> bool:
        return False

    def cap(self, amount_usd: str) -> None:
        """The amount the human approved becomes this payment's cap (the --max-usd they would type)."""
        self.args.max_usd = str(amount_usd)
        self._settings = None  # loaded again, with that cap
        self._client = None

    def progress(self, message: str) -> None:
        super().progress(message)  # the server's log (stderr), as the scripts do
        self._run.report(redact.scrub(message))

    def sleep(self, seconds: float) -> None:
        self._run.sleep(seconds)

    def content_of(self, value: str, flag: str) -> str:
        """Over MCP an option like --user-data carries the content itself, never a file name: bounded,
        and refused when it looks like a private key or one of this skill's own secrets (a model
        must not be able to send the wallet's key away inside a machine's cloud-init)."""
        name = flag.lstrip("-").replace("-", "_")
        size = len(value.encode("utf-8"))
        if size > INLINE_MAX_BYTES:
            raise UsageError(f"{name} is {size} bytes; over MCP it is inline text of at most {INLINE_MAX_BYTES} bytes.", code="input_too_large",
                             hint="Shorten it (fetch larger files from the machine itself once it runs).")
        why = redact.secret_like(value, self._run.app.config.secrets)
        if why:
            raise PolicyError(
                f"Refused to send {name}: {why}. Nothing was sent.",
                code="secret_in_input",
                details={"input": name},
                hint="Never put keys, tokens or passphrases into a machine's user data. If the machine needs a secret, the human provides it themselves.",
            )
        return value

    def confirm(self, question: str, *, details: Any = None, flag: str = "--yes") -> None:
        if self._run.spec.kind == SPEND:
            self._run.approve(question, details if isinstance(details, dict) else {})
            return
        if getattr(self.args, "yes", False):
            return
        raise ConfirmationRequired(
            f"{question} Confirmation needed: call {self._run.spec.name} again with confirm: true.",
            details=details,
            hint="Nothing was done. Show these details to the user and call again with confirm: true only once they agree.",
        )


class Run:
    """One tool call: the script's handler in a thread, and the channel back to the event loop.

    The thread posts ("progress", text), ("tick", None), ("ask", (message, schema)) and
    ("done", document) events; the request handler relays progress and answers "ask" by
    eliciting (or, on protocol 2026-07-28, by returning an InputRequiredResult and resuming
    when the client retries with the answer)."""

    def __init__(self, app: "McpApp", spec: ToolSpec, argv: list[str], *, can_elicit: bool, digest: str) -> None:
        import anyio
        import anyio.lowlevel

        self.app, self.spec, self.argv, self.can_elicit, self.digest = app, spec, argv, can_elicit, digest
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self._answers: queue.Queue = queue.Queue()
        self._send, self._recv = anyio.create_memory_object_stream(math.inf)
        self._loop = anyio.lowlevel.current_token()
        self._last = spec.name
        self._started = time.monotonic()
        self._notified = 0
        self._spend_lock_held = False
        self._granted: tuple | None = None  # the payment the human approved in an escalation's question
        self._escalated = False

    # -- thread side --
    def start(self) -> None:
        # Not a daemon: a payment in flight at shutdown finishes and is journalled.
        threading.Thread(target=self._work, name=f"mcp-{self.spec.name}", daemon=False).start()

    def _work(self) -> None:
        # The secrets this call loads and sends are scrubbed from what it reports, then forgotten.
        with redact.scope():
            try:
                if self.spec.kind == SPEND:
                    self._acquire_spend_lock()
                out = cli.execute(self.spec.parser, self._handler, self.argv, context=lambda args: McpContext(args, self))
                if out.exit_code != 0:
                    out = self.escalate(out.doc) or out
            except KeyboardInterrupt:
                err = ComputeError("Interrupted.", code="interrupted")
                out = cli.Outcome({"ok": False, "error": err.to_dict()}, None, 130)
            except BaseException as e:  # noqa: BLE001 - the request must get an answer whatever happened
                err = ComputeError(f"Internal error: {type(e).__name__}: {e}", code="internal_error")
                out = cli.Outcome({"ok": False, "error": err.to_dict()}, None, 1)
            finally:
                self._release_spend_lock()
            doc = cli.document(out.doc)
        if out.exit_code == EXIT_PAYMENT_UNKNOWN:
            doc = _payment_unknown(self.spec, doc)
        self.finished.set()
        self._post(("done", doc))

    def _handler(self, ctx: "McpContext"):
        if self.spec.kind == SPEND and getattr(ctx.args, "confirm_quote", None):
            self._approve_quote(ctx)
        return self.spec.handler(ctx)

    def _approve_quote(self, ctx: "McpContext") -> None:
        """--confirm-quote stands for the human's approval of that quote in the scripts. Over MCP
        the model passes it, so it is a reference to what the human is now asked about, never the
        approval itself: the recorded quote goes through ``approve`` (same rules as any payment),
        and the flow then pays only terms identical to it, or nothing. A quote whose price was not
        checked is always asked; approved, its amount becomes this payment's cap (the --max-usd
        the human would have typed)."""
        rec = Quotes(ctx.settings.state_dir).load(ctx.args.confirm_quote)  # the handler's own check, earlier
        terms = quote_terms(rec["fields"], pin_status(ctx.settings.state_dir, rec["fields"]))
        unchecked = rec.get("price_checked") is False
        if grant_key(terms) != self._granted:
            self.approve(f"Pay quote {rec['quote_id']} exactly as quoted?", terms,
                         always_ask="its price could not be checked against the catalog" if unchecked else None)
        if unchecked and terms.get("amount_usd") is not None:
            ctx.cap(terms["amount_usd"])

    def escalate(self, doc: dict) -> "cli.Outcome | None":
        """A refusal only the human may lift (HUMAN_DECISIONS), on a client that can ask them:
        quote the same call with the human's flag, put that quote to them, and on their yes pay
        exactly it. Never without elicitation: the refusal then stands, its hint addressed to them."""
        err = doc.get("error") if isinstance(doc, dict) else None
        code = err.get("code") if isinstance(err, dict) else None
        if self.spec.kind != SPEND or code not in HUMAN_DECISIONS or not self.can_elicit or self._escalated:
            return None
        self._escalated = True
        flag, question = HUMAN_DECISIONS[code]
        base = [x for x in self.argv if not x.startswith("--confirm-quote=")]
        extra = [flag] if flag else []
        quoted = cli.execute(self.spec.parser, self.spec.handler, argv_with(base, ["--quote", *extra]), context=lambda args: McpContext(args, self))
        q = quoted.doc.get("quote") if quoted.doc.get("ok") else None
        if not isinstance(q, dict) or not q.get("quote_id"):
            return quoted if quoted.doc.get("ok") is False else None
        self._granted = None
        try:
            self.approve(question, q, always_ask=decision_reason(code, err.get("details")))
        except ComputeError as e:
            return cli.Outcome({"ok": False, "error": e.to_dict()}, None, e.exit_code)
        self._granted = grant_key(quote_terms(q, q.get("payee_status")))
        pay = [f"--confirm-quote={q['quote_id']}", *extra]
        return cli.execute(self.spec.parser, self._handler, argv_with(base, pay), context=lambda args: McpContext(args, self))

    def _acquire_spend_lock(self) -> None:
        told = False
        while not self.app.spend_lock.acquire(timeout=0.2):
            if self.cancelled.is_set():
                raise KeyboardInterrupt
            if not told:
                self.report("Waiting for another payment of this server to finish (one paying tool at a time)")
                told = True
        self._spend_lock_held = True

    def _release_spend_lock(self) -> None:
        if self._spend_lock_held:
            self._spend_lock_held = False
            self.app.spend_lock.release()

    def _post(self, item: tuple) -> None:
        import anyio.from_thread

        try:
            anyio.from_thread.run_sync(self._send.send_nowait, item, token=self._loop)
        except Exception:  # the event loop is gone (server shutting down): nobody to tell
            pass

    def report(self, message: str) -> None:
        self._last = message
        self._post(("progress", message))

    def sleep(self, seconds: float) -> None:
        # Only the wait loop sleeps, and only after any payment is done: another payment may start.
        self._release_spend_lock()
        self._post(("tick", None))
        if self.cancelled.wait(max(0.0, seconds)):
            raise KeyboardInterrupt  # what Ctrl-C raises in a script: the document says "interrupted"

    def approve(self, question: str, terms: dict, *, always_ask: str | None = None) -> None:
        """Go ahead with a payment, or raise. Spending itself was switched on by the human
        (COMPUTE_MCP_ALLOW_SPEND); each payment is then theirs to approve through elicitation.
        Without a client that can ask: approval_unavailable, unless the human started the server
        with COMPUTE_MCP_APPROVAL=unattended. COMPUTE_MCP_CONFIRM_ABOVE_USD skips the question
        only below it and only to a payee already pinned. ``always_ask`` (or a recipient account
        created at the wallet's cost) is asked whatever the threshold, and refused without a client
        that can ask, unattended or not."""
        if self._granted is not None and self._granted == grant_key(terms):
            self.report("The user approved this payment already (the question before it)")
            return
        side_cost = isinstance(terms.get("recipient_account"), dict) and terms["recipient_account"].get("create")
        special = always_ask or ("it creates the payee's token account at your wallet's cost" if side_cost else None)
        if not self.can_elicit:
            if special is None and self.app.config.unattended:
                self.report(f"Paying without a question (COMPUTE_MCP_APPROVAL=unattended; the client cannot ask the user): {question}")
                return
            raise PolicyError(
                ("This payment needs the human's answer (" + special + "), and this MCP client cannot ask them. "
                 if special else "This MCP client cannot ask the human to approve the payment (no elicitation). ")
                + "Nothing was signed.",
                code="approval_unavailable",
                details={"quote": terms, "always_asked": special},
                hint="Show the user the quote and ask them to pay it themselves (the script at a terminal), or to use an MCP client "
                "that supports elicitation"
                + ("." if special else "; only the human may start this server with COMPUTE_MCP_APPROVAL=unattended."),
            )
        amount = approved_usd(terms)
        pinned = terms.get("payee_status") == "pinned" or terms.get("method") == "credits"
        if special is None and pinned and amount is not None and amount <= self.app.config.confirm_above_usd:
            self.report(f"Paying without a question: {amount} USD to the pinned payee is within COMPUTE_MCP_CONFIRM_ABOVE_USD={self.app.config.confirm_above_usd}")
            return
        self._ask(question + (f" Note: {special}." if special else ""), terms)

    def _ask(self, question: str, terms: dict) -> None:
        own = own_fingerprint(State(self.app.config.state_dir)) if self.app.config.state_dir else None
        self._post(("ask", (redact.scrub(approval_message(question, terms, own)), APPROVAL_SCHEMA)))
        try:
            action, content = self._answers.get(timeout=APPROVAL_TIMEOUT)
        except queue.Empty:
            action, content = "timeout", None
        if action == "accept" and isinstance(content, dict) and content.get("approve") is True:
            self.report("The user approved the payment")
            return
        why = {
            "decline": "The user declined the payment",
            "cancel": "The user dismissed the approval request",
            "timeout": f"No answer to the approval request within {APPROVAL_TIMEOUT:g} s",
            "accept": "The user did not tick 'approve'",
        }.get(action, "The payment was not approved")
        raise PolicyError(
            f"{why}; nothing was signed or sent.",
            code="declined_by_user",
            details={"answer": action, "quote": terms},
            hint="Do not call this tool again for the same purchase unless the user asks for it.",
        )

    # -- event-loop side --
    def answer(self, action: str, content: dict | None) -> None:
        self._answers.put((action, content))

    def cancel(self) -> None:
        self.cancelled.set()
        self._answers.put(("cancel", None))

    async def next_event(self, ctx) -> tuple[str, Any]:
        while True:
            kind, value = await self._recv.receive()
            if kind == "progress" or kind == "tick":
                await self._notify(ctx, value if kind == "progress" else f"{self._last} ({time.monotonic() - self._started:.0f} s)")
                continue
            return kind, value

    async def _notify(self, ctx, message: str) -> None:
        self._notified += 1
        try:
            await ctx.session.report_progress(self._notified, None, message)
        except Exception:  # a client that went away must not stop the command
            pass


def can_elicit(ctx) -> bool:
    caps = ctx.session.client_capabilities
    el = getattr(caps, "elicitation", None)
    # An empty elicitation capability means form mode (the only mode before 2025-11-25).
    return el is not None and (el.form is not None or el.url is None)


def call_digest(name: str, arguments: dict) -> str:
    return hashlib.sha256(json.dumps([name, arguments], sort_keys=True, default=str).encode()).hexdigest()


def _payment_unknown(spec: ToolSpec, doc: dict) -> dict:
    err = dict(doc.get("error") or {})
    details = dict(err.get("details") or {}) if isinstance(err.get("details"), dict) else {"details": err.get("details")}
    jid = details.get("journal_id")
    never = f"Never call {spec.name} again for this order: that would sign a second payment."
    err["code"] = "payment_unknown"
    err["message"] = f"{err.get('message', '')} {never}".strip()
    err["hint"] = f"Call the reconcile tool with journal_id {jid!r}: it looks the order up and asks the chain; resend: true re-sends the same signed payment, never a new one. {never}"
    details["reconcile_tool"] = {"name": "reconcile", "arguments": {"journal_id": jid}}
    err["details"] = details
    return {**doc, "error": err}
