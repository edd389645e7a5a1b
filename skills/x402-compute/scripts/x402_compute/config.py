"""Settings from flags and the environment.

Names existing users already have keep working: ``PRIVATE_KEY``,
``WALLET_ADDRESS``, ``SOLANA_SECRET_KEY``, ``SOLANA_WALLET_ADDRESS``
(fallback ``WALLET_ADDRESS_SECONDARY``), ``COMPUTE_API_KEY``,
``COMPUTE_AUTH_CHAIN``, ``COMPUTE_AUTH_MODE``, ``COMPUTE_MAX_SPEND_USD``.

A ``.env`` file is read only when the user names one (``--env-file`` or
``COMPUTE_ENV_FILE``): an implicit ``.env`` in the working directory could
redirect payments. The process environment wins over the named file
(python-dotenv's own default): a variable set for one run is the more specific
choice, and ``doctor.py`` shows where each setting came from.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from . import redact
from .errors import ConfigError
from .ledger.store import url_passwords
from .networks import NETWORKS

DEFAULT_BASE_URL = "https://compute.x402layer.cc"
DEFAULT_MAX_SPEND_USD = Decimal("25")
MAX_USD = Decimal("1000000")

# Public RPC endpoints, overridable per network (e.g. by the sandbox's env file): from the network table.
DEFAULT_RPC_URLS = {k: n.rpc_default for k, n in NETWORKS.items()}
RPC_ENV = {k: n.rpc_env for k, n in NETWORKS.items()}

AUTH_MODES = ("auto", "private-key", "ows", "api-key")
PAYMENT_NETWORKS = (*NETWORKS, "stripe")  # every table network, plus "stripe": MPP card charges
DEFAULT_STRIPE_API_BASE = "https://api.stripe.com/v1"
DEFAULT_BUDGET_USD = 50
DEFAULT_BUDGET_WINDOW_S = 24 * 3600
BUDGET_WINDOW_MIN_S, BUDGET_WINDOW_MAX_S = 3600, 90 * 24 * 3600
# COMPUTE_AUTH_CHAIN values that name an EVM key (sent as "base"), from the network table.
EVM_AUTH_CHAINS = tuple(k for k, n in NETWORKS.items() if n.auth_chain == "base")


@dataclass
class Settings:
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    api_key_source: str | None = None
    private_key: str | None = None
    wallet_address: str | None = None
    solana_secret_key: str | None = None
    solana_wallet_address: str | None = None
    auth_chain: str | None = None
    auth_mode: str = "auto"
    ows_wallet: str | None = None
    max_spend_usd: Decimal = DEFAULT_MAX_SPEND_USD
    max_spend_source: str = "default"
    rpc_urls: dict[str, str] = field(default_factory=dict)
    # The rolling budget over every payment (payments/budget.py): None = off.
    budget_limit_micros: int | None = DEFAULT_BUDGET_USD * 10**6
    budget_window_s: int = DEFAULT_BUDGET_WINDOW_S
    budget_window: str = "24h"
    allowed_networks: tuple[str, ...] = PAYMENT_NETWORKS
    max_instances: int | None = None
    require_quote: bool = False  # COMPUTE_REQUIRE_QUOTE: outside a terminal only an approved quote pays
    state_dir: Path = Path()
    # The ledger (journal, budget, quotes, payee pins): None = SQLite in the state folder; a
    # postgresql:// URL (COMPUTE_LEDGER_URL or COMPUTE_LEDGER_URL_FILE) = shared by several agents.
    ledger_url: str | None = None
    ledger_url_source: str | None = None
    timeout: float = 30.0
    allow_insecure_http: bool = False
    # MPP card charges (--pay stripe): the user's own Stripe account creates the Shared Payment Token.
    stripe_secret_key: str | None = None
    stripe_secret_key_source: str | None = None  # "STRIPE_SECRET_KEY" | "STRIPE_SECRET_KEY_FILE"
    stripe_payment_method: str | None = None
    stripe_api_base: str = DEFAULT_STRIPE_API_BASE
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Where each variable in ``env`` came from: "environment" or "file" (the named env file).
    env_sources: dict[str, str] = field(default_factory=dict, repr=False)
    env_file: str | None = None
    env_file_values: Mapping[str, str] = field(default_factory=dict, repr=False)
    flag_sources: dict[str, str] = field(default_factory=dict, repr=False)  # variable -> the flag that overrode it

    def setting_source(self, name: str) -> str:
        """``environment``, ``file``, ``default`` or the flag (``--base-url``): where ``name``'s value came from."""
        if name in self.flag_sources:
            return self.flag_sources[name]
        return self.env_sources.get(name, "default") if (self.env.get(name) or "") != "" else "default"

    def __repr__(self) -> str:  # never leak secrets through a repr in a log
        return f"Settings(base_url={self.base_url!r}, auth_mode={self.auth_mode!r}, auth_chain={self.auth_chain!r})"

    @property
    def has_evm_key(self) -> bool:
        return bool(self.private_key)

    @property
    def has_solana_key(self) -> bool:
        return bool(self.solana_secret_key)

    def require_secure(self, url: str, what: str) -> None:
        """Refuse to send ``what`` (a signed or paying request, or a chain read a payment relies
        on) over plain http to a host other than this machine, unless ``--allow-insecure-http``."""
        if insecure_http(url) and not self.allow_insecure_http:
            raise ConfigError(
                f"Refusing to send {what} over plain http to {urlsplit(url).hostname}: anyone on the network path could read it, "
                "replay a signed request or take a payment. Only https, or http to this machine (127.0.0.1, localhost), is used for that.",
                code="insecure_transport",
                hint="Use the https:// URL. Plain http for a lab setup on a trusted network is the human's decision: only they may pass --allow-insecure-http.",
            )

    def rpc_url(self, network: str) -> str:
        url = self.rpc_urls.get(network) or ""
        var = RPC_ENV.get(network, network.upper() + "_RPC_URL")
        if not url:
            raise ConfigError(
                f"No RPC URL for {network}.",
                hint=f"Set {var}.",
            )
        return _checked_url(url, var)


def is_loopback(host: str | None) -> bool:
    h = (host or "").strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _checked_url(url: str, name: str) -> str:
    """``url`` if it is an http(s) URL with a host and a valid port; else ConfigError naming ``name``
    (the URL itself is not repeated: it may carry a password)."""
    try:
        u = urlsplit(url)
        u.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
    except ValueError as e:
        raise ConfigError(f"{name} is not a valid URL ({e}).", hint="Give an https://host[:port] URL.") from None
    if u.scheme.lower() not in ("http", "https") or not u.hostname:
        raise ConfigError(f"{name} must be an http:// or https:// URL with a host.", hint="Give an https://host[:port] URL.")
    return url


def insecure_http(url: str) -> bool:
    """Plain http to a host other than this machine."""
    u = urlsplit(url or "")
    return u.scheme.lower() == "http" and not is_loopback(u.hostname)


def default_state_dir(env: Mapping[str, str]) -> Path:
    if env.get("X402_COMPUTE_STATE_DIR"):
        return Path(env["X402_COMPUTE_STATE_DIR"]).expanduser()
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "x402-compute"


def _read_env_file(path: str) -> dict[str, str]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"Env file not found: {p}", hint="Pass an existing file to --env-file or COMPUTE_ENV_FILE.")
    from dotenv import dotenv_values  # small; only when a file is named

    return {k: v for k, v in dotenv_values(p).items() if v is not None}


def _secret(env: Mapping[str, str], name: str) -> tuple[str | None, str | None]:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE``."""
    value = (env.get(name) or "").strip()
    if value:
        return value, name
    path = (env.get(f"{name}_FILE") or "").strip()
    if path:
        try:
            return Path(path).expanduser().read_text().strip() or None, f"{name}_FILE"
        except OSError as e:
            raise ConfigError(f"Cannot read {name}_FILE ({path}): {e.strerror}") from None
    return None, None


def parse_usd(text: str, what: str) -> Decimal:
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ConfigError(f"{what} must be a number of US dollars, got {text!r}.") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{what} must be a non-negative number of US dollars, got {text!r}.")
    if value > MAX_USD:
        # Far above any machine's price; also keeps later atomic-unit arithmetic (10^18 per
        # dollar on MegaETH) inside Decimal's range instead of overflowing into a traceback.
        raise ConfigError(f"{what} must be at most {MAX_USD} US dollars, got {text!r}.")
    return value


def load_settings(
    *,
    environ: Mapping[str, str] | None = None,
    env_file: str | None = None,
    base_url: str | None = None,
    max_usd: str | None = None,
    timeout: float | None = None,
    allow_insecure_http: bool = False,
) -> Settings:
    process: dict[str, str] = dict(os.environ if environ is None else environ)
    env_file = env_file or process.get("COMPUTE_ENV_FILE")
    from_file = _read_env_file(env_file) if env_file else {}
    # The process environment wins (python-dotenv's override=False): a file never replaces a
    # variable the caller set, even an empty one.
    env = {**from_file, **process}
    sources = {k: "environment" for k in process}
    sources.update({k: "file" for k in from_file if k not in process})

    s = Settings(env=env, env_sources=sources, env_file=str(env_file) if env_file else None, env_file_values=from_file,
                 allow_insecure_http=allow_insecure_http)
    s.base_url = (base_url or env.get("COMPUTE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    if base_url:
        s.flag_sources["COMPUTE_BASE_URL"] = "--base-url"
    _checked_url(s.base_url, "The base URL (--base-url or COMPUTE_BASE_URL)")
    s.state_dir = default_state_dir(env)

    s.api_key, s.api_key_source = _secret(env, "COMPUTE_API_KEY")
    if not s.api_key:
        saved = s.state_dir / "api_key"
        try:
            s.api_key = saved.read_text().strip() or None
            s.api_key_source = str(saved) if s.api_key else None
        except OSError:
            pass
    s.private_key, _ = _secret(env, "PRIVATE_KEY")
    s.solana_secret_key, _ = _secret(env, "SOLANA_SECRET_KEY")
    s.wallet_address = (env.get("WALLET_ADDRESS") or "").strip() or None
    s.solana_wallet_address = (
        env.get("SOLANA_WALLET_ADDRESS") or env.get("WALLET_ADDRESS_SECONDARY") or ""
    ).strip() or None
    s.ows_wallet = (env.get("OWS_WALLET") or "").strip() or None

    mode = (env.get("COMPUTE_AUTH_MODE") or "auto").strip().lower()
    if mode not in AUTH_MODES:
        raise ConfigError(f"COMPUTE_AUTH_MODE must be one of {', '.join(AUTH_MODES)}, got {mode!r}.")
    s.auth_mode = mode
    s.auth_chain = resolve_auth_chain(env, s)

    if max_usd is not None:
        s.max_spend_usd, s.max_spend_source = parse_usd(max_usd, "--max-usd"), "--max-usd"
        s.flag_sources["COMPUTE_MAX_SPEND_USD"] = "--max-usd"
    elif env.get("COMPUTE_MAX_SPEND_USD"):
        s.max_spend_usd = parse_usd(env["COMPUTE_MAX_SPEND_USD"], "COMPUTE_MAX_SPEND_USD")
        s.max_spend_source = "COMPUTE_MAX_SPEND_USD"

    _load_spend_controls(env, s)
    _load_stripe(env, s)
    s.ledger_url, s.ledger_url_source = _secret(env, "COMPUTE_LEDGER_URL")

    for secret in (s.api_key, s.private_key, s.solana_secret_key, s.stripe_secret_key):
        redact.register(secret)
    if s.ledger_url:
        for password in url_passwords(s.ledger_url):  # a password in the URL is never printed
            redact.register(password)

    s.rpc_urls = {net: env.get(var) or DEFAULT_RPC_URLS[net] for net, var in RPC_ENV.items()}
    for url in (s.base_url, *s.rpc_urls.values()):  # a user:password@ in an API or RPC URL is never printed
        for password in url_passwords(url):
            redact.register(password)
    if timeout is not None:
        s.timeout = timeout
        s.flag_sources["COMPUTE_TIMEOUT"] = "--timeout"
    elif env.get("COMPUTE_TIMEOUT"):
        try:
            s.timeout = float(env["COMPUTE_TIMEOUT"])
        except ValueError:
            raise ConfigError(f"COMPUTE_TIMEOUT must be seconds, got {env['COMPUTE_TIMEOUT']!r}.") from None
    return s


def parse_window(text: str, what: str = "COMPUTE_BUDGET_WINDOW") -> int:
    """``Nh`` or ``Nd`` (1h to 90d) in seconds."""
    m = re.fullmatch(r"\s*([0-9]{1,4})\s*([hd])\s*", text or "")
    seconds = int(m.group(1)) * (3600 if m.group(2) == "h" else 86400) if m else -1
    if not BUDGET_WINDOW_MIN_S <= seconds <= BUDGET_WINDOW_MAX_S:
        raise ConfigError(
            f"{what} must be a window like 24h or 7d (whole hours or days, 1h to 90d), got {text!r}.",
            code="config_error",
            hint=f"Fix {what}, e.g. {what}=24h." if what.isupper() else "Use e.g. --window 7d.",
        )
    return seconds


def _load_spend_controls(env: Mapping[str, str], s: Settings) -> None:
    """COMPUTE_BUDGET_USD, COMPUTE_BUDGET_WINDOW, COMPUTE_ALLOWED_NETWORKS, COMPUTE_MAX_INSTANCES,
    COMPUTE_REQUIRE_QUOTE.

    A value that cannot be read is an error naming the variable and the accepted form, never a
    silent fallback to the default: these are the human's limits on an agent's spending. An empty
    value is the default (``off`` is the only way to turn the budget off)."""
    raw = (env.get("COMPUTE_BUDGET_USD") or "").strip()
    if raw.lower() == "off":
        s.budget_limit_micros = None
    elif raw:
        try:
            limit = Decimal(raw)
        except InvalidOperation:
            limit = Decimal("NaN")
        if not limit.is_finite() or limit < 0 or limit > MAX_USD:
            raise ConfigError(
                f"COMPUTE_BUDGET_USD must be a number of US dollars from 0 to {MAX_USD}, or off, got {raw!r}.",
                hint="Ask the human which budget they want; e.g. COMPUTE_BUDGET_USD=50 (the default) or COMPUTE_BUDGET_USD=off.",
            )
        s.budget_limit_micros = int(limit * 10**6)  # whole micro-dollars, rounded down: never more than set
    window = (env.get("COMPUTE_BUDGET_WINDOW") or "").strip()
    if window:
        s.budget_window_s, s.budget_window = parse_window(window), window.replace(" ", "").lower()
    nets = (env.get("COMPUTE_ALLOWED_NETWORKS") or "").strip()
    if nets:
        names = [n.strip().lower() for n in nets.split(",") if n.strip()]
        bad = [n for n in names if n not in PAYMENT_NETWORKS]
        if bad or not names:
            raise ConfigError(
                f"COMPUTE_ALLOWED_NETWORKS must be a comma list of {', '.join(PAYMENT_NETWORKS)}, got {nets!r}"
                + (f" ({', '.join(repr(b) for b in bad)} unknown)." if bad else "."),
                hint="E.g. COMPUTE_ALLOWED_NETWORKS=base,solana; unset it to allow every network.",
            )
        s.allowed_networks = tuple(n for n in PAYMENT_NETWORKS if n in names)
    rq = (env.get("COMPUTE_REQUIRE_QUOTE") or "").strip().lower()
    if rq not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ConfigError(f"COMPUTE_REQUIRE_QUOTE must be 1 or 0, got {rq!r}.", hint="Set COMPUTE_REQUIRE_QUOTE=1 to pay only approved quotes outside a terminal.")
    s.require_quote = rq in ("1", "true", "yes", "on")
    limit_text = (env.get("COMPUTE_MAX_INSTANCES") or "").strip()
    if limit_text:
        if not re.fullmatch(r"[0-9]{1,6}", limit_text):
            raise ConfigError(
                f"COMPUTE_MAX_INSTANCES must be a whole number of instances (0 or more), got {limit_text!r}.",
                hint="E.g. COMPUTE_MAX_INSTANCES=3; unset it for no limit.",
            )
        s.max_instances = int(limit_text)


def _load_stripe(env: Mapping[str, str], s: Settings) -> None:
    """STRIPE_SECRET_KEY (or STRIPE_SECRET_KEY_FILE), STRIPE_PAYMENT_METHOD, STRIPE_API_BASE.

    Only their form is checked here (a wrong value is an error naming the variable); whether they
    are set at all matters only when a payment uses them (StripeOption.preflight)."""
    s.stripe_secret_key, s.stripe_secret_key_source = _secret(env, "STRIPE_SECRET_KEY")
    key = s.stripe_secret_key
    if key and not re.fullmatch(r"(sk|rk)_(test|live)_[A-Za-z0-9]{8,247}", key):
        raise ConfigError(
            f"{s.stripe_secret_key_source} is not a Stripe secret key (sk_test_…, sk_live_… or a restricted rk_… key).",
            code="config_error",
            hint="Copy the secret key from the Stripe dashboard (Developers → API keys); never a publishable pk_ key.",
        )
    pm = (env.get("STRIPE_PAYMENT_METHOD") or "").strip() or None
    if pm and not re.fullmatch(r"pm_[A-Za-z0-9_]{1,250}", pm):
        raise ConfigError(
            f"STRIPE_PAYMENT_METHOD must be a Stripe PaymentMethod id (pm_…), got {pm[:40]!r}.",
            code="config_error",
            hint="Use the id of the card saved in your Stripe account, e.g. pm_1Pxyz….",
        )
    s.stripe_payment_method = pm
    base = (env.get("STRIPE_API_BASE") or "").strip().rstrip("/")
    if base:
        u = urlsplit(base)
        if u.scheme.lower() not in ("http", "https") or not u.hostname or u.query or u.fragment:
            raise ConfigError(
                f"STRIPE_API_BASE must be an http(s) URL such as {DEFAULT_STRIPE_API_BASE}, got {base[:80]!r}.",
                code="config_error",
                hint="Unset STRIPE_API_BASE to use Stripe itself; set it only for a local emulation (the sandbox's env file does).",
            )
        s.stripe_api_base = base


def resolve_auth_chain(env: Mapping[str, str], s: Settings) -> str:
    """Which wallet signs management auth: ``base`` (any EVM key) or ``solana``.

    ``COMPUTE_AUTH_CHAIN`` wins: a network whose table row has an ``auth_chain``
    (``megaeth``/``robinhood`` are EVM keys and are sent as ``base``, the label
    proven against production). Otherwise, like the
    upstream skill: ``WALLET_ADDRESS`` decides by its shape; then an EVM key;
    then a Solana key; else ``base``.
    """
    chain = (env.get("COMPUTE_AUTH_CHAIN") or "").strip().lower()
    if chain:
        net = NETWORKS.get(chain)
        if net is not None and net.auth_chain:
            return net.auth_chain
        raise ConfigError(
            f"COMPUTE_AUTH_CHAIN must be base or solana, got {chain!r}.",
            hint="Unset it to choose from the configured keys.",
        )
    if s.wallet_address:
        return "base" if s.wallet_address.startswith("0x") else "solana"
    if s.private_key:
        return "base"
    if s.solana_secret_key or s.solana_wallet_address:
        return "solana"
    return "base"
