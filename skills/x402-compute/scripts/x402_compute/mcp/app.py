"""The MCP server itself: its configuration, the app (tools listed and called), stdio and --http serving."""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import sys
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from .. import __version__, cli
from ..config import load_settings, parse_usd
from ..errors import ComputeError, ConfigError, PolicyError, UsageError
from ..state import ensure_dir
from .approval import APPROVAL_KEY
from .runner import Run, call_digest, can_elicit
from .tools import SPEND, all_tools

TOKEN_FILE_NAME = "mcp-http-token"  # in the state folder, 0600: the --http endpoint's bearer token


@dataclass
class ServerConfig:
    allow_spend: bool = False
    confirm_above_usd: Decimal = Decimal(0)
    script_argv: list[str] = field(default_factory=list)  # the server's --env-file/--base-url/... for every call
    unattended: bool = False  # COMPUTE_MCP_APPROVAL=unattended: a client that cannot ask still pays
    state_dir: Path | None = None
    secrets: tuple[str, ...] = ()  # the env file's secret values: never sent inside a model's text

    @classmethod
    def load(cls, args: argparse.Namespace) -> "ServerConfig":
        # The scripts' own loader: the same environment and --env-file, checked before serving.
        settings = load_settings(env_file=args.env_file, base_url=args.base_url, timeout=args.timeout)
        env = settings.env
        allow = (env.get("COMPUTE_MCP_ALLOW_SPEND") or "").strip().lower()
        if allow not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
            raise ConfigError(f"COMPUTE_MCP_ALLOW_SPEND must be 1 (spending on) or 0 (off, the default), got {allow!r}.")
        above = (env.get("COMPUTE_MCP_CONFIRM_ABOVE_USD") or "").strip() or "0"
        approval = (env.get("COMPUTE_MCP_APPROVAL") or "").strip().lower() or "ask"
        if approval not in ("ask", "unattended"):
            raise ConfigError(
                f"COMPUTE_MCP_APPROVAL must be ask (the default: each payment is the human's to approve) or unattended, got {approval!r}.",
                hint="unattended lets a client that cannot ask the human pay: the cap, the budget and the allow-lists are then the only bounds.",
            )
        argv: list[str] = []
        if args.env_file:
            argv.append(f"--env-file={args.env_file}")
        if args.base_url:
            argv.append(f"--base-url={args.base_url}")
        if args.timeout is not None:
            argv.append(f"--timeout={args.timeout}")
        if args.verbose:
            argv.append("--verbose")
        if args.allow_insecure_http:
            argv.append("--allow-insecure-http")
        if getattr(args, "identity", None):  # ssh_exec's key: the human's choice at start, never a tool input
            argv.append(f"--identity={args.identity}")
        secret_names = re.compile(r"KEY|SECRET|PASSPHRASE|PASSWORD|TOKEN|MNEMONIC|SEED", re.IGNORECASE)
        known = tuple(v for k, v in settings.env.items()
                      if secret_names.search(k) and not k.upper().endswith("_FILE") and isinstance(v, str) and len(v.strip()) >= 8)
        return cls(allow in ("1", "true", "yes", "on"), parse_usd(above, "COMPUTE_MCP_CONFIRM_ABOVE_USD"), argv,
                   unattended=approval == "unattended", state_dir=settings.state_dir, secrets=known)


INSTRUCTIONS = """\
Rent VPS and GPU machines paid per prepaid hour in stablecoins (x402 / MPP).
Flow: browse_plans (and browse_regions, browse_os) -> quote_provision -> provision (wait: true, or wait_for_instance) -> instance_details / list_instances -> extend_instance or destroy_instance.
Every result is the JSON document of the matching script in scripts/: {"ok": true, ...}, or a tool error {"ok": false, "error": {"code", "message", "hint", ...}}.
A hint naming a script flag that is also an argument of the tool (--days) means that argument in snake_case (days); a script name (instance_details.py) means the tool of that name. A flag that is no tool argument (--max-usd, --accept-payee-change, --ignore-unresolved, --yes, ...) is a decision only the human takes: tell the user what the hint says, never look for a way around it.
Spending tools (provision, extend_instance, credits_topup) are refused with spending_disabled unless the human started this server with COMPUTE_MCP_ALLOW_SPEND=1: tell the user, never look for another way to pay. Each payment is put to the human for approval; declined_by_user means stop, approval_unavailable means this client cannot ask them: show the quote and let the human pay it themselves.
Quote first (quote_provision, quote_extend, quote_topup) and show the quote; confirm_quote: <quote_id> pays exactly it, once, after the human approves it.
The spend cap, the rolling budget (budget_status shows it), allow-lists, price checks and payee pinning are the human's settings: report refusals (spend_cap_exceeded, budget_exceeded, network_not_allowed, instance_limit, ...) with their figures, never try to get around them.
payment_unknown: the payment went out and its outcome is unknown. Call reconcile with the journal_id; never call the paying tool again for that order.
destroy_instance and revoke_api_key need confirm: true: ask the user first.
"""


class McpApp:
    def __init__(self, config: ServerConfig, tools: tuple[ToolSpec, ...] | None = None) -> None:
        self.config = config
        self.spend_lock = threading.Lock()
        self.tools: dict[str, ToolSpec] = {}
        for spec in tools if tools is not None else all_tools():
            try:
                spec.input_schema  # loads the script and maps its parser
            except FileNotFoundError as e:
                print(f"x402-compute mcp: tool {spec.name} left out: {e} is missing", file=sys.stderr)
                continue
            self.tools[spec.name] = spec
        self._parked: dict[str, Run] = {}
        self._runs: set[Run] = set()

    def server(self):
        from mcp.server.lowlevel.server import Server

        return Server(
            "x402-compute",
            version=__version__,
            title="x402-compute",
            instructions=INSTRUCTIONS,
            lifespan=self._lifespan,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            get_tool_input_schema=lambda name: self.tools[name].input_schema if name in self.tools else None,
        )

    @asynccontextmanager
    async def _lifespan(self, _server):
        try:
            yield {}
        finally:
            for run in list(self._runs):  # stop waits and pending approvals; payments in flight finish
                run.cancel()

    async def _list_tools(self, ctx, params):
        import mcp_types as types

        return types.ListToolsResult(tools=[spec.tool() for spec in self.tools.values()])

    async def _call_tool(self, ctx, params):
        import anyio
        from mcp.shared.exceptions import MCPError
        from mcp_types import INVALID_PARAMS

        if params.request_state is not None:
            return await self._resume(ctx, params)
        spec = self.tools.get(params.name)
        if spec is None:
            raise MCPError(INVALID_PARAMS, f"Unknown tool: {params.name!r}")
        arguments = params.arguments or {}
        bad = spec.validate(arguments)
        if bad is not None:
            return self._error(bad)
        spec = spec.for_call(arguments)
        if spec.kind == SPEND and not self.config.allow_spend:
            return self._error(
                PolicyError(
                    f"Spending is disabled on this MCP server: {spec.name} was refused and nothing was signed or sent.",
                    code="spending_disabled",
                    hint="Show the user the quote (quote_provision / quote_extend) and ask them to turn spending on by "
                    "restarting the server with COMPUTE_MCP_ALLOW_SPEND=1 in its environment. Do not look for another way to pay.",
                )
            )
        run = Run(self, spec, spec.argv(arguments, self.config.script_argv), can_elicit=can_elicit(ctx), digest=call_digest(params.name, arguments))
        self._runs.add(run)
        run.start()
        try:
            return await self._drive(ctx, run)
        except anyio.get_cancelled_exc_class():
            run.cancel()
            raise

    async def _resume(self, ctx, params):
        """The 2026-07-28 retry of a call that asked for approval: hand the answer to its parked thread."""
        import anyio
        import mcp_types as types

        run = self._parked.pop(params.request_state, None)
        if run is None or run.spec.name != params.name or run.digest != call_digest(params.name, params.arguments or {}):
            if run is not None:
                run.cancel()  # a retry for other arguments does not approve this payment
            return self._error(
                PolicyError(
                    "That approval request is unknown or was answered already; nothing was signed.",
                    code="approval_expired",
                    hint="Call the tool again without request state.",
                )
            )
        reply = (params.input_responses or {}).get(APPROVAL_KEY)
        if isinstance(reply, types.ElicitResult):
            run.answer(reply.action, reply.content)
        else:
            run.answer("cancel", None)
        try:
            return await self._drive(ctx, run)
        except anyio.get_cancelled_exc_class():
            run.cancel()
            raise

    async def _drive(self, ctx, run: Run):
        import mcp_types as types
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        while True:
            kind, value = await run.next_event(ctx)
            if kind == "done":
                self._runs.discard(run)
                return _tool_result(value)
            message, schema = value
            if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                # 2026-07-28 forbids server-to-client requests: the question rides the result and
                # the thread stays parked until the client retries with the answer.
                for token, parked in list(self._parked.items()):
                    if parked.finished.is_set():
                        del self._parked[token]
                token = secrets.token_urlsafe(32)
                self._parked[token] = run
                ask = types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))
                return types.InputRequiredResult(input_requests={APPROVAL_KEY: ask}, request_state=token)
            try:
                reply = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
                run.answer(reply.action, reply.content)
            except Exception as e:  # the client could not ask: treat as not approved
                print(f"x402-compute mcp: elicitation failed ({type(e).__name__}: {e}); the payment is not approved", file=sys.stderr)
                run.answer("cancel", None)

    @staticmethod
    def _error(e: ComputeError):
        return _tool_result(cli.document({"ok": False, "error": e.to_dict()}))


def _tool_result(doc: dict):
    import mcp_types as types

    text = json.dumps(doc, ensure_ascii=False)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=doc, is_error=doc.get("ok") is not True)


def parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "mcp_server.py",
        "Serve every x402-compute command as an MCP tool, over stdio (default) or Streamable HTTP\n"
        "on 127.0.0.1. Settings come from the environment or --env-file exactly as for the scripts.\n\n"
        "Spending tools (provision, extend_instance, credits_topup) are refused until the server is\n"
        "started with COMPUTE_MCP_ALLOW_SPEND=1; then the client's user approves each payment through\n"
        "elicitation. A client that cannot ask gets approval_unavailable (nothing signed) unless you\n"
        "start the server with COMPUTE_MCP_APPROVAL=unattended: the cap, the budget and the\n"
        "allow-lists are then the only bounds. Payments up to COMPUTE_MCP_CONFIRM_ABOVE_USD (default 0)\n"
        "to an already pinned payee are not asked about; a payee change, a recipient account creation\n"
        "or an unchecked price always is. No tool input is a decision of yours (--max-usd,\n"
        "--accept-payee-change, ...) or a local file. stdout carries only MCP messages; logs go to stderr.\n\n"
        "--http serves only requests with the header Authorization: Bearer <token>: the token is read\n"
        "from --token-file, else created once in the state folder (0600); its path is printed on stderr.",
        examples="python scripts/mcp_server.py\nCOMPUTE_MCP_ALLOW_SPEND=1 python scripts/mcp_server.py --env-file ~/.x402-compute.env\n"
        "python scripts/mcp_server.py --http 8765    # token: <state folder>/mcp-http-token\n"
        "python scripts/mcp_server.py --http 8765 --token-file ~/.config/x402-compute/mcp-token",
        output=False,
        exit_codes="exit codes: 0 stopped, 2 usage or configuration error before serving (one JSON document on stdout, as for every script), 130 interrupted",
    )
    p.add_argument("--http", type=int, metavar="PORT", help="serve Streamable HTTP at http://127.0.0.1:PORT/mcp instead of stdio (0 = any free port)")
    p.add_argument("--token-file", metavar="PATH",
                   help="with --http: the bearer token clients must send (Authorization: Bearer <token>), read from this file "
                   "(not readable by group or others); default: a random token created once at <state folder>/mcp-http-token (0600)")
    p.add_argument("--identity", metavar="FILE",
                   help="private key file ssh_exec logs in with (default: the skill's own key for instances made with ssh_key: auto, "
                   "and the only key offered: never the SSH agent or the default keys); never a tool input")
    return p


def _fail(e: ComputeError, code: int = 2) -> NoReturn:
    # Before serving, the script contract holds: one JSON document on stdout. Hosts show a
    # server's stderr, not what it wrote on stdout before the protocol began, so say it there too.
    doc = cli.document({"ok": False, "error": e.to_dict()})
    print(f"x402-compute mcp: not started: {doc['error']['message']}" + (f" ({doc['error']['hint']})" if doc["error"].get("hint") else ""), file=sys.stderr, flush=True)
    print(cli.dumps(doc), flush=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> NoReturn:
    try:
        args = parser().parse_args(argv)
        if args.http is not None and not 0 <= args.http <= 65535:
            raise UsageError(f"--http takes a port number 0-65535, got {args.http}.")
        if args.token_file and args.http is None:
            raise UsageError("--token-file is for --http (stdio needs no token).")
        config = ServerConfig.load(args)
        token, token_path = http_token(args.token_file, config.state_dir) if args.http is not None else (None, None)
    except ComputeError as e:
        _fail(e)
    try:
        import anyio  # noqa: F401
        import mcp  # noqa: F401
    except ImportError as e:
        _fail(ConfigError(f"The MCP server needs the mcp package: {e}.", code="missing_dependency", hint="pip install -r requirements.txt (beside SKILL.md)."))
    app = McpApp(config)
    try:
        if args.http is None:
            _serve_stdio(app)
        else:
            print(f"x402-compute MCP server: clients send Authorization: Bearer <the token in {token_path}>", file=sys.stderr, flush=True)
            _serve_http(app, args.http, token)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)


def _serve_stdio(app: McpApp) -> None:
    import anyio
    from mcp.server.stdio import stdio_server

    server = app.server()

    async def serve():
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(serve)


def http_token(token_file: str | None, state_dir: Path | None) -> tuple[str, Path]:
    """The bearer token of the --http endpoint and the file holding it: ``--token-file``, else
    ``<state>/mcp-http-token``, created once (0600) with a random token. Every local user and
    process can reach a loopback port; only who can read this file can use the wallet through it."""
    if token_file:
        path = Path(token_file).expanduser()
        try:
            st = path.stat()
            text = path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"Cannot read --token-file {path}: {e.strerror}.") from None
        if st.st_mode & 0o077:
            raise ConfigError(f"--token-file {path} can be read by others ({oct(st.st_mode & 0o777)}).", code="unsafe_token_file",
                              hint=f"chmod 600 {path}")
        if len(text) < 16 or any(c.isspace() for c in text):
            raise ConfigError(f"--token-file {path} must hold one token of at least 16 characters, no spaces.")
        return text, path
    if state_dir is None:
        raise ConfigError("No state folder for the HTTP token; pass --token-file.")
    path = Path(state_dir) / TOKEN_FILE_NAME
    ensure_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path} can be read by others ({oct(path.stat().st_mode & 0o777)}).", code="unsafe_token_file",
                              hint=f"chmod 600 {path}, or delete it to create a new token.") from None
        text = path.read_text().strip()
        if len(text) < 16:
            raise ConfigError(f"{path} does not hold a usable token.", hint=f"Delete {path} to create a new one.") from None
        return text, path
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token, path


class BearerGate:
    """ASGI middleware in front of the MCP app: an HTTP request without ``Authorization: Bearer
    <token>`` is answered 401 before it reaches the app (no session, no tool); the comparison is
    constant-time. The app's own Host and Origin checks (DNS rebinding) still run behind it."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "http":
            got = b""
            for name, value in scope.get("headers") or []:
                if name.lower() == b"authorization":
                    got = value
                    break
            # RFC 9110 §11.1: the scheme name is case-insensitive ("bearer" is Bearer); the token is not.
            scheme, _, credential = got.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credential.strip(b" "), self.expected):
                body = json.dumps({"error": "unauthorized", "message": "This MCP endpoint needs the header Authorization: Bearer <token> "
                                   "(the token file's path is printed on the server's stderr)."}).encode()
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="x402-compute"'),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _serve_http(app: McpApp, port: int, token: str) -> None:
    import uvicorn

    host = "127.0.0.1"  # never another interface: the tools hold a wallet
    starlette_app = BearerGate(app.server().streamable_http_app(host=host), token)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            for s in self.servers:
                for sock in s.sockets:
                    print(f"x402-compute MCP server: http://{host}:{sock.getsockname()[1]}/mcp", file=sys.stderr, flush=True)

    Server(uvicorn.Config(starlette_app, host=host, port=port, log_level="warning", lifespan="on")).run()
