"""Self-check behind ``doctor.py``: is this machine ready for the configured mode?

Each check returns a status: ``ok``, ``warn`` (works, but worth a look),
``fail`` (the configured mode will not work, or a secret is exposed) or
``skip`` (not applicable, or a network check under ``--offline``). Secrets are
never reported: addresses only, API keys as their last four characters.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import stat
import sys
import time
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from .. import __version__, cli, cmdline
from ..cli import Output, table
from ..config import insecure_http
from ..errors import AuthError, ComputeError
from ..ledger import LedgerUnavailable, open_ledger, redact_url, url_passwords
from ..ledger.migrations import CURRENT
from ..ledger.store import SQLITE_NAME
from ..money import atomic_to_usd, plain
from ..networks import NETWORKS
from ..payments.journal import MOVED_NAME, sqlite_fingerprint, sqlite_source
from ..state import read_json, unsafe_dir
from ..wallets import evm_signer, solana_signer

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
MIN_PYTHON = (3, 10)
# The server rejects an X-Auth-Timestamp outside its window (±300 s in the
# sandbox; the hosted value is undocumented), so warn well before that.
SKEW_WARN_S = 30
SKEW_FAIL_S = 240

# distribution name -> module to import
IMPORT_NAMES = {"python-dotenv": "dotenv", "eth-account": "eth_account", "pynacl": "nacl", "open-wallet-standard": "ows", "pympp": "mpp"}
# Features, not the core: missing ones disable OWS vaults or MPP, so they warn.
OPTIONAL = {"open-wallet-standard": "OWS vault wallets", "pympp": "MPP (--pay mpp)", "mcp": "the MCP server (mcp_server.py)"}
# Used when requirements.txt is not beside the library (e.g. a pip install).
FALLBACK_REQUIREMENTS = ("requests>=2.31,<3", "python-dotenv>=1.0,<2", "eth-account>=0.13.7,<0.15",
                         "solders>=0.27.1,<0.30", "base58>=2.1,<3", "pynacl>=1.5,<2")


@dataclass
class Check:
    name: str
    status: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.data:
            d.pop("data")
        return d


# -- dependencies ---------------------------------------------------------------

def _version_tuple(v: str) -> tuple[int, ...]:
    nums = []
    for part in v.split("."):
        m = re.match(r"\d+", part)
        if not m:
            break
        nums.append(int(m.group()))
        if m.end() < len(part):  # "0b1", "1rc2": the numeric prefix is what ranges compare here
            break
    return tuple(nums)


def _cmp(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = max(len(a), len(b))
    a, b = a + (0,) * (n - len(a)), b + (0,) * (n - len(b))
    return (a > b) - (a < b)


_OPS: dict[str, Callable[[int], bool]] = {
    ">=": lambda c: c >= 0, ">": lambda c: c > 0, "<=": lambda c: c <= 0,
    "<": lambda c: c < 0, "==": lambda c: c == 0, "!=": lambda c: c != 0,
}


def satisfies(version: str, spec: str) -> bool:
    """``spec`` like ``>=1.0,<2`` (the simple ranges our requirements use)."""
    have = _version_tuple(version)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = re.match(r"(>=|<=|==|!=|>|<|~=)\s*(.+)", clause)
        if not m:
            continue
        op, want = m.groups()
        if op == "~=":  # compatible release: >= want and same prefix but the last part
            w = _version_tuple(want)
            if _cmp(have, w) < 0 or have[: len(w) - 1] != w[:-1]:
                return False
            continue
        if not _OPS[op](_cmp(have, _version_tuple(want))):
            return False
    return True


def _marker_applies(marker: str) -> bool:
    """The one marker form our requirements use: ``python_version >= "3.11"``."""
    m = re.fullmatch(r'\s*python_version\s*(>=|<=|==|!=|>|<)\s*["\']([\d.]+)["\']\s*', marker)
    if not m:
        return True
    have = f"{sys.version_info.major}.{sys.version_info.minor}"
    return _OPS[m.group(1)](_cmp(_version_tuple(have), _version_tuple(m.group(2))))


def requirements(bundle_root: Path | None = None) -> list[tuple[str, str]]:
    root = bundle_root or Path(__file__).resolve().parents[3]  # commands/ -> x402_compute/ -> scripts/ -> the bundle
    try:
        lines = (root / "requirements.txt").read_text().splitlines()
    except OSError:
        lines = list(FALLBACK_REQUIREMENTS)
    out = []
    for line in lines:
        line, _, marker = line.split("#", 1)[0].partition(";")
        if marker and not _marker_applies(marker):
            continue
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)", line.strip())
        if m:
            out.append((m.group(1), m.group(3).strip()))
    return out


def check_python() -> Check:
    v = sys.version_info
    text = f"{v.major}.{v.minor}.{v.micro}"
    if (v.major, v.minor) < MIN_PYTHON:
        return Check("python", FAIL, f"Python {text} is too old; 3.10 or newer is required.", {"version": text})
    return Check("python", OK, f"Python {text} at {sys.executable}", {"version": text})


def check_dependencies(bundle_root: Path | None = None) -> Check:
    found, problems, missing_features = {}, [], []

    def problem(dist: str, text: str) -> None:
        if dist.lower() in OPTIONAL:
            missing_features.append(f"{text} ({OPTIONAL[dist.lower()]} unavailable)")
        else:
            problems.append(text)

    for dist, spec in requirements(bundle_root):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            problem(dist, f"{dist} is not installed")
            continue
        found[dist] = version
        if spec and not satisfies(version, spec):
            problem(dist, f"{dist} {version} does not satisfy {spec}")
            continue
        try:
            importlib.import_module(IMPORT_NAMES.get(dist.lower(), dist.replace("-", "_").lower()))
        except Exception as e:  # a broken wheel shows up here, not in the metadata
            problem(dist, f"{dist} {version} is installed but does not import ({type(e).__name__}: {e})")
    fix = ". Run: pip install -r requirements.txt (in the skill folder)."
    if problems:
        return Check("dependencies", FAIL, "; ".join(problems + missing_features) + fix, {"installed": found})
    if missing_features:
        return Check("dependencies", WARN, "; ".join(missing_features) + fix, {"installed": found})
    return Check("dependencies", OK, f"{len(found)} packages present and in range", {"installed": found})


# -- configuration ----------------------------------------------------------------

def check_credentials(settings) -> list[Check]:
    """Which management auth and payment wallets are configured, and do keys match addresses."""
    checks: list[Check] = []
    wallets: dict[str, str] = {}
    ows = settings.auth_mode == "ows" or (settings.auth_mode == "auto" and settings.ows_wallet)

    def signer(name: str, make: Callable, configured: bool) -> None:
        if not configured:
            checks.append(Check(name, SKIP, "not configured"))
            return
        try:
            s = make(settings)
        except ImportError:
            checks.append(Check(name, FAIL, "OWS wallets are not supported by this version of the skill.",
                                {"ows_wallet": settings.ows_wallet}))
            return
        except ComputeError as e:
            checks.append(Check(name, FAIL, e.message + (f" {e.hint}" if e.hint else "")))
            return
        wallets[name] = s.address
        checks.append(Check(name, OK, f"address {s.address}" + (" (OWS)" if ows and not settings.private_key else ""), {"address": s.address}))

    signer("evm_wallet", evm_signer, bool(settings.private_key) or bool(ows))
    signer("solana_wallet", solana_signer, bool(settings.solana_secret_key) or bool(ows))

    key = settings.api_key
    if key:
        src = settings.api_key_source or "COMPUTE_API_KEY"
        checks.append(Check("api_key", OK, f"API key ...{key[-4:]} from {src}", {"last4": key[-4:], "source": src}))
    else:
        checks.append(Check("api_key", SKIP, f"not configured (optional: {cmdline.command('create_api_key.py', '--save')})"))

    failed = any(c.status == FAIL for c in checks)
    if key:
        mode = "api-key"
    elif "evm_wallet" in wallets and settings.auth_chain == "base":
        mode = "signature (EVM)"
    elif "solana_wallet" in wallets and settings.auth_chain == "solana":
        mode = "signature (Solana)"
    elif wallets:
        mode = "signature (" + ", ".join(sorted(wallets)) + ")"
    else:
        mode = None
    if mode:
        checks.append(Check("management_auth", OK, f"{mode}; COMPUTE_AUTH_MODE={settings.auth_mode}", {"mode": mode, "auth_chain": settings.auth_chain}))
    elif failed:
        checks.append(Check("management_auth", FAIL, "the configured wallet cannot be used (see above)"))
    else:
        checks.append(Check("management_auth", WARN, "no credentials: only the catalog (plans, regions, OS) works. "
                            "Set COMPUTE_API_KEY, PRIVATE_KEY or SOLANA_SECRET_KEY (or their *_FILE forms)."))

    nets = []  # the x402 networks of the network table these wallets can pay on (EVM ones first)
    for family, wallet in (("evm", "evm_wallet"), ("svm", "solana_wallet")):
        if wallet in wallets:
            nets += [k for k, n in NETWORKS.items() if n.x402 and n.family == family]
    cap = {"max_spend_usd": str(settings.max_spend_usd), "source": settings.max_spend_source}
    if nets:
        def named(k: str) -> str:  # a network's minimum per direct payment, where it has one
            n = NETWORKS[k]
            return f"{k} (at least {plain(atomic_to_usd(n.min_payment_atomic, n.decimals))} USD a payment)" if n.min_payment_atomic else k

        checks.append(Check("payment", OK, f"x402 can pay on {', '.join(map(named, nets))}; spend cap ${settings.max_spend_usd} per call ({settings.max_spend_source})",
                            {"networks": nets, **cap}))
    else:
        checks.append(Check("payment", SKIP if not failed else FAIL,
                            "no wallet: paid commands (provision, extend, credits top-up) are unavailable", cap))
    return checks


# Settings doctor reports with their source; secrets by name and source only, never a value.
SHOWN_SETTINGS = ("COMPUTE_BASE_URL", "X402_COMPUTE_STATE_DIR", "COMPUTE_AUTH_MODE", "COMPUTE_AUTH_CHAIN",
                  "COMPUTE_MAX_SPEND_USD", "COMPUTE_BUDGET_USD", "COMPUTE_BUDGET_WINDOW", "COMPUTE_ALLOWED_NETWORKS",
                  "COMPUTE_MAX_INSTANCES", "COMPUTE_REQUIRE_QUOTE", "COMPUTE_TIMEOUT")
OTHER_SETTINGS = ("XDG_STATE_HOME", "WALLET_ADDRESS", "SOLANA_WALLET_ADDRESS", "WALLET_ADDRESS_SECONDARY", "OWS_WALLET",
                  "OWS_VAULT_PATH", "BASE_RPC_URL", "SOLANA_RPC_URL", "MEGAETH_RPC_URL", "ROBINHOOD_RPC_URL", "TEMPO_RPC_URL",
                  "STRIPE_PAYMENT_METHOD", "STRIPE_API_BASE", "COMPUTE_MCP_ALLOW_SPEND", "COMPUTE_MCP_CONFIRM_ABOVE_USD")
SECRET_SETTINGS = ("COMPUTE_API_KEY", "COMPUTE_API_KEY_FILE", "PRIVATE_KEY", "PRIVATE_KEY_FILE", "SOLANA_SECRET_KEY",
                   "SOLANA_SECRET_KEY_FILE", "OWS_PASSPHRASE", "OWS_PASSPHRASE_FILE", "STRIPE_SECRET_KEY", "STRIPE_SECRET_KEY_FILE",
                   "COMPUTE_LEDGER_URL", "COMPUTE_LEDGER_URL_FILE")  # a ledger URL may carry a password


def check_settings(settings) -> Check:
    """Each setting's effective value and where it came from: ``environment``, ``file`` (the env
    file), ``default``, or the flag that set it. The environment wins over the file; a variable
    the file sets but the environment overrides is named, since that is easy to miss."""
    budget = settings.budget_limit_micros
    effective = {
        "COMPUTE_BASE_URL": settings.base_url,
        "X402_COMPUTE_STATE_DIR": str(settings.state_dir),
        "COMPUTE_AUTH_MODE": settings.auth_mode,
        "COMPUTE_AUTH_CHAIN": settings.auth_chain,
        "COMPUTE_MAX_SPEND_USD": str(settings.max_spend_usd),
        "COMPUTE_BUDGET_USD": "off" if budget is None else f"{budget / 10**6:g}",
        "COMPUTE_BUDGET_WINDOW": settings.budget_window,
        "COMPUTE_ALLOWED_NETWORKS": ",".join(settings.allowed_networks),
        "COMPUTE_MAX_INSTANCES": settings.max_instances,
        "COMPUTE_REQUIRE_QUOTE": settings.require_quote,
        "COMPUTE_TIMEOUT": settings.timeout,
    }
    shown: dict[str, dict[str, Any]] = {n: {"value": effective[n], "source": settings.setting_source(n)} for n in SHOWN_SETTINGS}
    for n in OTHER_SETTINGS + SECRET_SETTINGS:
        src = settings.setting_source(n)
        if src != "default":
            shown[n] = {"source": src} if n in SECRET_SETTINGS else {"value": settings.env.get(n), "source": src}
    file_values = getattr(settings, "env_file_values", {}) or {}
    shadowed = sorted(n for n in file_values if settings.env_sources.get(n) == "environment")
    parts = [f"state folder {settings.state_dir} ({shown['X402_COMPUTE_STATE_DIR']['source']})",
             f"base URL {settings.base_url} ({shown['COMPUTE_BASE_URL']['source']})"]
    if settings.env_file:
        parts.append(f"env file {settings.env_file}")
    if shadowed:
        parts.append("set in the env file but taken from the environment, which wins: " + ", ".join(shadowed))
    data = {"env_file": settings.env_file, "settings": shown, "shadowed_by_environment": shadowed}
    return Check("settings", WARN if shadowed else OK, "; ".join(parts), data)


def _loose(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode) & 0o077


def check_permissions(settings) -> list[Check]:
    checks = []
    root = Path(settings.state_dir)
    why = unsafe_dir(root)
    if why and root.exists():
        checks.append(Check("state_dir", FAIL, f"{why}: another user could read or replace saved secrets, the journal or the payee pins, "
                            f"so the client refuses to write there. Fix the owner and mode (chmod 700 {root}) or set X402_COMPUTE_STATE_DIR.",
                            {"path": str(root), "problem": why}))
    elif why:
        checks.append(Check("state_dir", FAIL, f"{root} does not exist yet and {why}; the client refuses to create its state folder there. "
                            "Set X402_COMPUTE_STATE_DIR to a folder under one only you can write to.", {"path": str(root), "problem": why}))
    elif not root.exists():
        checks.append(Check("state_dir", OK, f"{root} (not created yet; it will be made 0700)", {"path": str(root)}))
    elif _loose(root):
        mode = oct(stat.S_IMODE(root.stat().st_mode))
        checks.append(Check("state_dir", WARN, f"{root} is {mode}: others can list the files in it (their contents stay 0600). "
                            f"The client never changes the mode of a folder it did not create; run: chmod 700 {root}", {"path": str(root), "mode": mode}))
    else:
        checks.append(Check("state_dir", OK, f"{root} (0700)", {"path": str(root)}))

    secrets: list[Path] = []
    if root.is_dir():
        secrets += [p for p in (root / "api_key",) if p.is_file()]
        for sub in ("instance-keys", "credentials", "journal"):
            if (root / sub).is_dir():
                secrets += sorted(p for p in (root / sub).iterdir() if p.is_file())
    env = settings.env
    for name in ("COMPUTE_API_KEY_FILE", "PRIVATE_KEY_FILE", "SOLANA_SECRET_KEY_FILE", "COMPUTE_ENV_FILE"):
        if env.get(name):
            p = Path(env[name]).expanduser()
            if p.is_file():
                secrets.append(p)
    exposed = []
    for p in secrets:
        try:
            if _loose(p) & 0o044:
                exposed.append(f"{p} ({oct(stat.S_IMODE(p.stat().st_mode))})")
        except OSError:
            continue
    if exposed:
        checks.append(Check("secret_files", FAIL, "readable by group or others: " + ", ".join(exposed) + ". Run: chmod 600 on each.",
                            {"exposed": exposed}))
    else:
        checks.append(Check("secret_files", OK, f"{len(secrets)} secret file(s), none readable by others", {"count": len(secrets)}))
    return checks


def check_transport(settings) -> Check:
    """Plain http off this machine: signed and paying requests (and chain reads) are refused."""
    urls = {"base_url": settings.base_url}
    urls.update({f"{net}_rpc": url for net, url in sorted(settings.rpc_urls.items()) if url})
    plain = {name: url for name, url in urls.items() if insecure_http(url)}
    if not plain:
        return Check("transport", OK, "https, or http to this machine only", {"urls": urls})
    listed = ", ".join(f"{name} {url}" for name, url in plain.items())
    if settings.allow_insecure_http:
        return Check("transport", WARN, f"plain http off this machine, allowed by --allow-insecure-http: {listed}. "
                     "Anyone on the path can read and replay signed requests and payments.", {"insecure": plain})
    return Check("transport", FAIL, f"plain http off this machine: {listed}. Signed, paying and chain requests to it are refused; "
                 "use https (or --allow-insecure-http for a lab setup).", {"insecure": plain})


# -- ledger ----------------------------------------------------------------------------

def check_ledger(settings) -> list[Check]:
    """The ledger (journal, budget, quotes, pins): reachable, its schema version, the SQLite file's
    mode, and a PostgreSQL URL that carries a password in clear. Reads only: a missing SQLite file is
    not created here, a schema is not migrated here."""
    out: list[Check] = []
    url = settings.ledger_url
    if url:
        where = redact_url(url)
        password = bool(url_passwords(url))
        if password and settings.ledger_url_source == "COMPUTE_LEDGER_URL":
            out.append(Check("ledger_secret", WARN, "COMPUTE_LEDGER_URL carries the database password in clear (every child process and "
                             "`ps e` can read the environment): put the URL in a 0600 file named by COMPUTE_LEDGER_URL_FILE, "
                             "or the password in ~/.pgpass.", {"ledger": where}))
    else:
        path = Path(settings.state_dir) / SQLITE_NAME
        where = str(path)
        if not path.exists():
            return out + [Check("ledger", OK, f"sqlite: {path} is made (0600) on the first payment", {"engine": "sqlite", "ledger": where})]
        loose = _loose(path)
        if loose:
            out.append(Check("ledger_permissions", FAIL, f"{path} is {oct(loose | 0o600)}: it holds signed payments; chmod 600 it.",
                             {"ledger": where}))
    try:
        led = open_ledger(Path(settings.state_dir), url)
        have = led.schema_version()
        carried = _ledger_import(led, have) if url and have <= CURRENT else []
        led.close()
    except (LedgerUnavailable, ComputeError) as e:
        return out + [Check("ledger", FAIL, e.message + (f" {e.hint}" if e.hint else ""), {"engine": "postgresql" if url else "sqlite", "ledger": where})]
    if not url:
        out += _ledger_moved(Path(settings.state_dir))
    data = {"engine": led.engine, "ledger": where, "schema_version": have, "supported": CURRENT}
    if have > CURRENT:
        out.append(Check("ledger", FAIL, f"{led.engine} ledger {where} has schema version {have}, newer than this release knows ({CURRENT}): "
                         "upgrade this skill; nothing is paid until then.", data))
    elif have < CURRENT:
        out.append(Check("ledger", OK, f"{led.engine} ledger {where} reachable; schema {have} is migrated to {CURRENT} on first use", data))
    else:
        out.append(Check("ledger", OK, f"{led.engine} ledger {where} reachable, schema version {have}", data))
    return out + carried


_BACK_TO_SQLITE = ("Going back (COMPUTE_LEDGER_URL unset) is not carried automatically: this folder's SQLite ledger then holds only "
                   "what it held before the switch plus what is paid on it later, so its budget, pins and unresolved checks do not "
                   "see the shared ledger's payments; what is paid on SQLite meanwhile is carried again on the next use of the shared ledger.")


def _ledger_import(led, have: int) -> list[Check]:
    """On a shared ledger: whether this state folder's SQLite ledger was carried into it (or will be
    on first use), and any payee pin it brought that disagrees with the fleet's. Reads only."""
    path = led.state_dir / SQLITE_NAME
    rec, conflicts = None, []
    if have >= 2:  # the schema that records imports by fingerprint, and pin conflicts
        rows = led._q("SELECT imported_ts, entries, fingerprint FROM imports WHERE source = ?", (sqlite_source(led),))
        rec = dict(zip(("imported_ts", "entries", "fingerprint"), rows[0])) if rows else None
        conflicts = [{"agent": a, **json.loads(b)} for a, b in led._q("SELECT agent, body FROM pin_conflicts ORDER BY agent, network")]
    out: list[Check] = []
    try:
        digest = sqlite_fingerprint(path) if path.is_file() else None
    except Exception as e:  # what the next paying run refuses on
        digest = None
        out.append(Check("ledger_import", FAIL, f"{path} cannot be read ({e}): its payments would not count toward the shared budget; "
                         "nothing is paid from this folder until it can be.", {"file": str(path)}))
    base = {"source": sqlite_source(led), "file": str(path)}
    if rec is not None:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec["imported_ts"]))
        stale = digest is not None and digest != rec["fingerprint"]
        out.append(Check("ledger_import", OK, f"{path} was carried into the shared ledger at {when} ({rec['entries']} journal entries)"
                         + ("; it was written since, and what is new is carried on the next use" if stale else "") + ". " + _BACK_TO_SQLITE,
                         {**base, "imported_at": when, "entries": rec["entries"], "pending": stale}))
    elif digest is not None:
        out.append(Check("ledger_import", OK, f"{path} holds a ledger not yet carried into the shared one: it is carried on the first "
                         "use from this folder (before anything is paid). " + _BACK_TO_SQLITE, {**base, "pending": True}))
    for c in conflicts:
        lo, fl = (r.get("pay_to") if isinstance(r, dict) else r for r in (c.get("local"), c.get("ledger")))
        out.append(Check("ledger_pin_conflict", FAIL, f"{c['agent']} pinned {lo} as the payee for {c.get('network')} before joining the shared "
                         f"ledger, which pins {fl}: its payments on {c.get('network')} are refused (payee_conflict) until the human checks "
                         "which is the service's payee and accepts it with --accept-payee-change.",
                         {"agent": c["agent"], "network": c.get("network"), "local_pinned": lo, "fleet_pinned": fl}))
    return out


def _ledger_moved(state_dir: Path) -> list[Check]:
    """Back on SQLite after this folder's ledger was carried into a shared one: say what that means."""
    note = read_json(state_dir / MOVED_NAME)
    if not isinstance(note, dict):
        return []
    return [Check("ledger_import", WARN, f"This folder's SQLite ledger was carried into the shared ledger {note.get('to')} at {note.get('at')}; "
                  "COMPUTE_LEDGER_URL is unset now, so the SQLite ledger is in use: payments made through the shared ledger since are not in it "
                  "(its budget, payee pins and unresolved checks do not see them; nothing is copied back). Set COMPUTE_LEDGER_URL again to "
                  "use the fleet's ledger; what is paid here meanwhile is carried over then.",
                  {"moved_to": note.get("to"), "moved_at": note.get("at")})]


# -- network ---------------------------------------------------------------------------

def check_api(client, settings) -> list[Check]:
    """One GET of the public catalog: does the API answer, and how far off is our clock?"""
    t0 = time.time()
    try:
        resp = client.transport.request("GET", "/compute/plans")
    except ComputeError as e:
        return [Check("api", FAIL, f"{settings.base_url} did not answer: {e.message}", {"base_url": settings.base_url}),
                Check("clock", SKIP, "no answer from the API to compare with")]
    t1 = time.time()
    body = resp.json()
    latency_ms = round((t1 - t0) * 1000)
    if resp.status == 200 and isinstance(body, dict) and isinstance(body.get("plans"), list):
        api = Check("api", OK, f"{settings.base_url} answered in {latency_ms} ms ({len(body['plans'])} plans)",
                    {"base_url": settings.base_url, "latency_ms": latency_ms})
    else:
        api = Check("api", FAIL, f"{settings.base_url}/compute/plans answered HTTP {resp.status} without a plan list; is this the compute API?",
                    {"base_url": settings.base_url, "status": resp.status})

    date = resp.headers.get("Date")
    try:
        server = parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        server = None
    if server is None:
        return [api, Check("clock", WARN, "the API sent no usable Date header; clock skew unknown")]
    # Date has one-second resolution: compare with the middle of the exchange, allow 1 s.
    skew = (t0 + t1) / 2 - server
    data = {"skew_seconds": round(skew, 1)}
    if abs(skew) <= max(1.5, (t1 - t0)):
        clock = Check("clock", OK, "local clock agrees with the server's Date header", data)
    elif abs(skew) < SKEW_WARN_S:
        clock = Check("clock", OK, f"local clock is {skew:+.0f} s off the server's", data)
    elif abs(skew) < SKEW_FAIL_S:
        clock = Check("clock", WARN, f"local clock is {skew:+.0f} s off the server's; signed requests may start failing. Sync it (NTP).", data)
    else:
        clock = Check("clock", FAIL, f"local clock is {skew:+.0f} s off the server's; signed management requests will be rejected. Sync it (NTP).", data)
    return [api, clock]


def check_auth_accepted(client) -> Check:
    """An authenticated read (GET /compute/instances) with the configured credentials."""
    try:
        n = len(client.list_instances())
    except AuthError as e:
        return Check("auth_accepted", FAIL, f"the API rejected the credentials: {e.message}")
    except ComputeError as e:
        return Check("auth_accepted", WARN, f"could not verify the credentials: {e.message}")
    return Check("auth_accepted", OK, f"the API accepted the credentials ({n} instance(s))", {"instances": n})


# -- all together --------------------------------------------------------------------------

def run_checks(load_settings: Callable[[], Any], make_client: Callable[[], Any], *, offline: bool) -> dict[str, Any]:
    checks = [check_python(), check_dependencies()]
    settings = None
    try:
        settings = load_settings()
        checks.append(Check("config", OK, f"base URL {settings.base_url}", {"base_url": settings.base_url}))
    except ComputeError as e:
        checks.append(Check("config", FAIL, e.message + (f" {e.hint}" if e.hint else "")))

    if settings is not None:
        checks.append(check_settings(settings))
        checks.append(check_transport(settings))
        checks += check_credentials(settings)
        checks += check_permissions(settings)
        checks += check_ledger(settings)
        auth_ok = any(c.name == "management_auth" and c.status == OK for c in checks)
        if offline:
            checks += [Check(n, SKIP, "--offline") for n in ("api", "clock", "auth_accepted")]
        else:
            client = make_client()
            net = check_api(client, settings)
            checks += net
            if auth_ok and net[0].status == OK:
                checks.append(check_auth_accepted(client))
            else:
                checks.append(Check("auth_accepted", SKIP, "no credentials configured" if not auth_ok else "the API did not answer"))

    counts = {s: sum(1 for c in checks if c.status == s) for s in (OK, WARN, FAIL, SKIP)}
    return {
        "healthy": counts[FAIL] == 0,
        "version": __version__,
        "offline": offline,
        "summary": counts,
        "checks": [c.to_dict() for c in checks],
    }


def doctor(ctx):
    """doctor.py: the checks, as one report; exit 1 when any failed."""
    report = run_checks(lambda: ctx.settings, lambda: ctx.client, offline=ctx.args.offline)
    rows = report["checks"]
    text = table(rows, [("status", "STATUS"), ("name", "CHECK"), ("detail", "DETAIL")])
    if report["healthy"]:
        return Output(report, text)
    failed = [c["name"] for c in rows if c["status"] == FAIL]
    error = {
        "code": "doctor_failed",
        "message": f"{len(failed)} check(s) failed: {', '.join(failed)}.\n{text}",
        "status": None,
        "details": None,
        "retryable": False,
        "hint": f"Fix what each failed check says, then run {cmdline.command('doctor.py')} again.",
    }
    return Output({**report, "ok": False, "error": error}, text, exit_code=1)


# -- doctor.py: its parser (the script and the MCP server both build it here) ------

DOCTOR_HELP = """Check that this machine is ready: Python and packages, configured credentials
(keys match their addresses), secret-file permissions, API reachability and clock skew.

Prints one JSON report {ok, checks: [{name, status, detail}], ...}; status is
ok, warn, fail or skip. Exits 0 when nothing failed, 1 otherwise. Secrets are
never shown: addresses only, API keys as their last four characters.
"""


def doctor_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "doctor.py",
        DOCTOR_HELP,
        examples="python scripts/doctor.py\npython scripts/doctor.py --offline -o text",
    )
    p.add_argument("--offline", action="store_true", help="skip the checks that need the network (API, clock skew, credentials accepted)")
    return p
