"""Administration of an Open Wallet Standard vault behind ``ows_cli.py``: wallets,
addresses, test signatures and agent API tokens, through the ``ows`` Python binding.

Signing for payments and auth lives in ``wallets/ows.py``; this module reuses its
binding loader, secret handling and error mapping, and adds what only an owner
does: create and import wallets, mint, list and revoke ``ows_key_`` tokens.

Secrets never go through argv: passphrases come from ``OWS_PASSPHRASE`` /
``OWS_PASSPHRASE_FILE`` or a hidden prompt, imported keys from a named environment
variable or stdin. Each method returns the JSON document its subcommand prints.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .. import cli
from ..cli import Output, table
from ..errors import ComputeError, ConfigError, UsageError
from ..networks import NETWORKS
from ..state import write_private
from ..wallets import ows as W

_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def _binding_errors(method):
    """Binding calls without their own mapping still surface as a ComputeError naming the vault."""

    @functools.wraps(method)
    def wrapper(self: "OwsAdmin", *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except RuntimeError as e:
            raise W.map_error(e, vault=self.vault) from None

    return wrapper


def wallet_summary(info: Mapping) -> dict:
    return {
        "id": info["id"],
        "name": info["name"],
        "created_at": info.get("created_at"),
        "evm_address": W.account_address(info, "eip155:"),
        "solana_address": W.account_address(info, "solana:"),
    }


CHAIN_NAMES = ", ".join(NETWORKS)  # what --allow-chain takes by name (chain_id maps them to CAIP-2)


def chain_id(name: str) -> str:
    """A chain for OWS: our network names to CAIP-2, 'evm' to Base; anything else is passed through."""
    low = name.strip().lower()
    if low == "evm":
        return W.DEFAULT_EVM_CHAIN
    if low in NETWORKS:
        return NETWORKS[low].caip2
    if low.isdigit():
        return f"eip155:{low}"
    return name.strip()


def parse_expiry(text: str) -> str:
    s = text.strip()
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"--expires-at must be an ISO-8601 date or time, got {text!r}.", hint="e.g. 2026-12-31 or 2026-12-31T18:00:00Z") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)  # a bare date/time is read as UTC, stated in --help
    dt = dt.astimezone(timezone.utc)
    if dt <= datetime.now(timezone.utc):
        raise UsageError(f"--expires-at {text!r} is in the past.")
    # The binding stores the string as given and does not validate it; normalise so it can compare.
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def solana_seed(text: str, *, hex_is_seed: bool) -> str | None:
    """A Solana secret as the 32-byte ed25519 seed (hex), from a base58 or JSON keypair (64 bytes) or seed (32)."""
    text = text.strip()
    raw: bytes | None = None
    if text.startswith("["):
        try:
            raw = bytes(json.loads(text))
        except (ValueError, TypeError):
            return None
    elif hex_is_seed and _HEX64.match(text):
        raw = bytes.fromhex(text.removeprefix("0x"))
    else:
        import base58

        try:
            raw = base58.b58decode(text)
        except ValueError:
            return None
    if len(raw) == 64:
        from nacl.signing import SigningKey

        if bytes(SigningKey(raw[:32]).verify_key) != raw[32:]:
            raise UsageError("The Solana keypair's public half does not match its secret half.")
        raw = raw[:32]
    return raw.hex() if len(raw) == 32 else None


def classify_key(text: str) -> tuple[str, str]:
    """("secp256k1" | "ed25519", hex) for a single private key; never echoes the value."""
    text = text.strip()
    if _HEX64.match(text):
        return "secp256k1", text.removeprefix("0x").lower()
    seed = solana_seed(text, hex_is_seed=False)
    if seed:
        return "ed25519", seed
    raise UsageError(
        "The key is neither a 64-hex EVM key nor a Solana keypair/seed (base58 or JSON byte array).",
        hint="The value was not printed. Check the variable or stdin content.",
    )


def _write_token(path: Path, token: str) -> None:
    # Not state.write_private: that one creates missing folders and refuses one others can write
    # to, rules for our state dir, not for a file the user named. O_EXCL: never replace a file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class OwsAdmin:
    """One vault, administered on behalf of its owner."""

    def __init__(self, vault: str | None, settings: Callable[[], Any]) -> None:
        # Settings are loaded only when a command needs the environment, as before the move:
        # wallet-list --vault or key-list --vault must not fail on an unrelated bad setting.
        self._ows = W.load_binding()
        self._vault_flag = vault
        self._settings = settings

    @property
    def env(self) -> Mapping[str, str]:
        return self._settings().env

    @property
    def vault(self) -> str | None:
        v = self._vault_flag
        return str(Path(v).expanduser()) if v else W.vault_path(self.env)

    @property
    def label(self) -> str:
        return W.vault_label(self.vault)

    # -- helpers ----------------------------------------------------------------------

    def _wallet_name(self, given: str | None) -> str:
        w = given or (self.env.get("OWS_WALLET") or "").strip()
        if not w:
            raise UsageError("No wallet given.", hint="Pass --wallet or set OWS_WALLET (see wallet-list).")
        return w

    def _wallet_info(self, name: str) -> dict:
        # env={}: only the wallet's metadata is read here, no secret is needed.
        return W.OwsWallet(name, vault=self.vault, env={}).info

    def _read_env_var(self, var: str) -> str:
        value = (self.env.get(var) or "").strip()
        if not value:
            raise UsageError(f"The environment variable {var} is empty or unset.", hint="Export the secret in that variable, or use --stdin.")
        return value

    def _new_passphrase(self, name: str, allow_empty: bool) -> str:
        """The passphrase that will encrypt a new wallet."""
        value = W.env_secret(self.env)
        if value is not None:
            if W.is_api_token(value):
                raise ConfigError(
                    "OWS_PASSPHRASE holds an API token; a new wallet needs a passphrase.",
                    hint="Set OWS_PASSPHRASE to the passphrase for the new wallet (tokens are made later with key-create).",
                )
            return value
        if W.interactive():
            first = W.prompt_secret(f"Passphrase for the new wallet {name!r} (empty for none): ")
            if W.prompt_secret("Repeat the passphrase: ") != first:
                raise UsageError("The passphrases do not match; nothing was created.")
            return first
        if allow_empty:
            return ""
        raise ConfigError(
            "No passphrase for the new wallet: OWS_PASSPHRASE is unset and there is no terminal to ask.",
            hint="Set OWS_PASSPHRASE (or OWS_PASSPHRASE_FILE), or pass --no-passphrase to store the key without one.",
        )

    def _owner_passphrase(self, wallet: str) -> str:
        """The owner's passphrase (key-create refuses API tokens: a token cannot mint tokens)."""
        value = W.env_secret(self.env)
        if value is None:
            value = W.prompt_secret(f"Passphrase for wallet {wallet!r}: ") if W.interactive() else ""
        if W.is_api_token(value):
            raise ConfigError(
                "key-create needs the wallet owner's passphrase, but OWS_PASSPHRASE holds an API token.",
                hint="Run it with the passphrase in OWS_PASSPHRASE (or at the prompt).",
            )
        return value

    def _allowed_chains_policy(self, chains: list[str]) -> str:
        """An allowed_chains policy for these chains (reused if the same set already exists)."""
        vault = self.vault
        ids = sorted({chain_id(c) for c in chains})
        pid = "allow-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]
        try:
            self._ows.get_policy(pid, vault_path_opt=vault)
            return pid
        except RuntimeError:
            pass
        policy = {
            "id": pid,
            "name": "allowed chains: " + ", ".join(ids),
            "version": 1,
            "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "rules": [{"type": "allowed_chains", "chain_ids": ids}],
            "action": "deny",
        }
        try:
            self._ows.create_policy(json.dumps(policy), vault_path_opt=vault)
        except RuntimeError as e:
            raise W.map_error(e, vault=vault) from None
        return pid

    @staticmethod
    def _token_target(save: str | None) -> Path | None:
        """Where --save writes, checked before the key exists so a failed write cannot lose a token."""
        if save is None:
            return None
        if save == "":
            return None  # the default path needs the key id; write_private(exclusive) guards it
        path = Path(save).expanduser()
        if path.exists() or path.is_symlink():
            raise UsageError(f"Refusing to overwrite {path}.", hint="Choose a new file for the token.")
        if not path.parent.is_dir():
            raise UsageError(f"The directory {path.parent} does not exist.")
        return path

    def _keys(self) -> list[dict]:
        vault = self.vault
        wallet_names = {w["id"]: w["name"] for w in self._ows.list_wallets(vault_path_opt=vault)}
        now = datetime.now(timezone.utc)
        rows = []
        for k in self._ows.list_api_keys(vault_path_opt=vault):
            exp = k.get("expires_at")
            expired = None
            if exp:
                try:
                    expired = datetime.fromisoformat(str(exp).replace("Z", "+00:00")) <= now
                except ValueError:
                    expired = None
            rows.append(
                {
                    "id": k["id"],
                    "name": k.get("name"),
                    "created_at": k.get("created_at"),
                    "expires_at": exp,
                    "expired": expired,
                    "wallets": [{"id": i, "name": wallet_names.get(i)} for i in k.get("wallet_ids", [])],
                    "policy_ids": k.get("policy_ids", []),
                }
            )
        return rows

    # -- wallets ----------------------------------------------------------------------

    @_binding_errors
    def list_wallets(self) -> dict:
        vault = self.vault
        rows = [wallet_summary(w) for w in self._ows.list_wallets(vault_path_opt=vault)]
        return {"vault": W.vault_label(vault), "count": len(rows), "wallets": rows}

    @_binding_errors
    def create_wallet(self, name: str, *, words: int = 12, show_mnemonic: bool = False, allow_empty_passphrase: bool = False) -> dict:
        vault = self.vault
        passphrase = self._new_passphrase(name, allow_empty_passphrase)
        data: dict = {"vault": W.vault_label(vault)}
        try:
            if show_mnemonic:
                # Generated here only because the user asked to see it; otherwise it stays inside the binding.
                mnemonic = self._ows.generate_mnemonic(words)
                info = self._ows.import_wallet_mnemonic(name, mnemonic, passphrase=passphrase, vault_path_opt=vault)
                data["mnemonic"] = mnemonic
                data["warning"] = "This mnemonic controls the funds. Write it down offline now; it is not shown again. Anyone with it can spend."
            else:
                info = self._ows.create_wallet(name, passphrase=passphrase, words=words, vault_path_opt=vault)
                data["backup"] = (
                    f"The mnemonic was not shown. Back up {W.vault_label(vault)}/wallets/{info['id']}.json (encrypted) "
                    "together with the passphrase, or create wallets with --show-mnemonic for a paper backup."
                )
        except RuntimeError as e:
            raise W.map_error(e, wallet=name, vault=self.vault) from None
        data["wallet"] = wallet_summary(info)
        data["passphrase_set"] = bool(passphrase)
        if "mnemonic" in data:
            # On stderr whatever the output mode, so a JSON consumer's terminal still warns the human.
            print("WARNING: the mnemonic below is shown once and controls the funds; store it offline.", file=sys.stderr)
        return data

    @_binding_errors
    def import_wallet(
        self,
        name: str,
        *,
        mnemonic_env: str | None = None,
        private_key_env: str | None = None,
        solana_key_env: str | None = None,
        stdin: bool = False,
        allow_empty_passphrase: bool = False,
    ) -> dict:
        vault = self.vault
        sources = [x for x in (mnemonic_env, private_key_env, stdin) if x]
        if len(sources) != 1 and not (solana_key_env and not sources):
            raise UsageError("Give exactly one of --mnemonic-env, --private-key-env, --stdin (--solana-key-env may join --private-key-env).")
        if solana_key_env and (mnemonic_env or stdin):
            raise UsageError("--solana-key-env combines only with --private-key-env.")

        mnemonic = secp = ed = None
        if mnemonic_env:
            mnemonic = " ".join(self._read_env_var(mnemonic_env).split())
        elif stdin:
            raw = sys.stdin.read().strip()
            if not raw:
                raise UsageError("Nothing on stdin.")
            if len(raw.split()) >= 12:
                mnemonic = " ".join(raw.split())
            else:
                kind, hexkey = classify_key(raw)
                secp, ed = (hexkey, None) if kind == "secp256k1" else (None, hexkey)
        if private_key_env:
            kind, hexkey = classify_key(self._read_env_var(private_key_env))
            secp, ed = (hexkey, None) if kind == "secp256k1" else (None, hexkey)
        if solana_key_env:
            if ed:
                raise UsageError("--private-key-env already holds a Solana key; use --solana-key-env for the Solana key and --private-key-env for the EVM key.")
            ed = solana_seed(self._read_env_var(solana_key_env), hex_is_seed=True)
            if not ed:
                raise UsageError(f"{solana_key_env} is not a Solana keypair or seed (base58, JSON byte array, or 64 hex).", hint="The value was not printed.")

        passphrase = self._new_passphrase(name, allow_empty_passphrase)
        warnings = []
        try:
            if mnemonic:
                info = self._ows.import_wallet_mnemonic(name, mnemonic, passphrase=passphrase, vault_path_opt=vault)
                kind = "mnemonic"
            elif secp and ed:
                info = self._ows.import_wallet_private_key(name, "", passphrase=passphrase, vault_path_opt=vault, secp256k1_key=secp, ed25519_key=ed)
                kind = "private_keys"
            elif secp:
                info = self._ows.import_wallet_private_key(name, secp, passphrase=passphrase, vault_path_opt=vault)
                kind = "private_key"
                warnings.append("Only an EVM key was imported: OWS generated a random Solana key for this wallet. Add --solana-key-env to import yours.")
            else:
                info = self._ows.import_wallet_private_key(name, ed, chain="solana", passphrase=passphrase, vault_path_opt=vault)
                kind = "private_key"
                warnings.append("Only a Solana key was imported: OWS generated a random EVM key for this wallet. Add --private-key-env to import yours.")
        except RuntimeError as e:
            if "already exists" in str(e):
                raise W.map_error(e, wallet=name, vault=self.vault) from None
            # The binding's detail can quote part of the secret (the invalid word, the bad hex character):
            # keep only its summary before the first colon.
            summary = str(e).split(":", 1)[0].strip() or "rejected"
            what = "mnemonic" if mnemonic else "private key"
            raise UsageError(f"OWS refused the {what}: {summary}.", code="ows_invalid_secret", hint="The value was not printed. Check the variable or stdin content.") from None
        return {"vault": W.vault_label(vault), "wallet": wallet_summary(info), "imported": kind, "passphrase_set": bool(passphrase), "warnings": warnings}

    @_binding_errors
    def address(self, wallet: str | None, chain: str | None = None) -> dict:
        s = wallet_summary(self._wallet_info(self._wallet_name(wallet)))
        data: dict = {"wallet": {"id": s["id"], "name": s["name"]}, "evm": s["evm_address"], "solana": s["solana_address"]}
        if chain:
            data["chain"] = chain
            data["address"] = data[chain]
            if not data["address"]:
                raise ConfigError(f"Wallet {s['name']!r} has no {chain} account.", code="ows_no_account")
        return data

    @_binding_errors
    def sign_message(self, wallet: str | None, message: str, *, chain: str = "evm", encoding: str = "utf8") -> dict:
        name = self._wallet_name(wallet)
        chain = chain_id(chain)
        solana = chain.startswith("solana")
        if encoding == "hex" and not re.fullmatch(r"(0x)?([0-9a-fA-F]{2})*", message):
            raise UsageError("--encoding hex needs an even number of hex digits.")
        message = message.removeprefix("0x") if encoding == "hex" else message
        w = W.OwsWallet(name, vault=self.vault, env=self.env)
        addr = w.account("solana:" if solana else "eip155:")
        res = w.call("sign_message", chain, message, encoding=encoding)
        sig_hex = str(res["signature"]).removeprefix("0x")
        data = {"wallet": {"id": w.id, "name": w.name}, "chain": chain, "address": addr, "encoding": encoding, "signature_hex": sig_hex}
        if solana:
            import base58

            data["signature"] = base58.b58encode(bytes.fromhex(sig_hex)).decode()  # Solana's usual text form
            data["scheme"] = "ed25519"
        else:
            data["signature"] = "0x" + sig_hex
            data["recovery_id"] = res.get("recovery_id")
            data["scheme"] = "eip191"
        return data

    # -- API tokens -------------------------------------------------------------------

    @_binding_errors
    def create_key(
        self,
        name: str,
        *,
        wallets: Sequence[str] | None = None,
        policies: Sequence[str] = (),
        allow_chains: Sequence[str] = (),
        expires_at: str | None = None,
        save: str | None = None,
    ) -> dict:
        """``save``: None prints the token, "" writes it to the state dir, a path writes it there."""
        vault = self.vault
        names = wallets or [self._wallet_name(None)]
        infos = [self._wallet_info(n) for n in names]
        expires = parse_expiry(expires_at) if expires_at else None
        target = self._token_target(save)
        policy_ids = list(dict.fromkeys(policies))
        for pid in policy_ids:
            try:
                self._ows.get_policy(pid, vault_path_opt=vault)
            except RuntimeError:
                raise UsageError(f"OWS policy {pid!r} does not exist.", hint="Use --allow-chain to create a chain policy.") from None
        passphrase = self._owner_passphrase(infos[0]["name"])
        if allow_chains:
            policy_ids.append(self._allowed_chains_policy(list(allow_chains)))
        try:
            res = self._ows.create_api_key(name, [w["id"] for w in infos], policy_ids, passphrase, expires_at=expires, vault_path_opt=vault)
        except RuntimeError as e:
            raise W.map_error(e, wallet=infos[0]["name"], vault=self.vault) from None
        token = res["token"]
        key = {"id": res["id"], "name": res["name"], "wallets": [{"id": w["id"], "name": w["name"]} for w in infos], "policy_ids": policy_ids, "expires_at": expires}
        warnings = []
        if not policy_ids:
            warnings.append("No policy: this token can sign anything on these wallets, on any chain, until it expires or is revoked. Consider --allow-chain.")
        if not expires:
            warnings.append("No expiry: the token works until revoked (key-revoke).")

        if save is None:
            print(
                "WARNING: the API token below is shown ONCE and cannot be recovered. Store it now in a secret store "
                "(or re-run with --save to write it to a 0600 file). Keep it out of logs and shell history.",
                file=sys.stderr,
            )
            return {"key": key, "token": token, "use": "OWS_PASSPHRASE=<token> (with OWS_WALLET)", "warning": "Shown once; it cannot be displayed again.", "warnings": warnings}
        try:
            if target is None:
                target = self._settings().state_dir / "ows-keys" / f"{res['id']}.token"
                write_private(target, token + "\n", exclusive=True)
            else:
                _write_token(target, token)
        except (OSError, ComputeError) as e:
            # The token is unrecoverable if it cannot be stored: revoke it rather than leave a live orphan.
            try:
                self._ows.revoke_api_key(res["id"], vault_path_opt=vault)
            except RuntimeError:
                pass
            raise ComputeError(f"Could not write the token to {target}: {e}; the key was revoked.", code="token_not_saved") from None
        return {"key": key, "token_file": str(target), "use": f"OWS_PASSPHRASE_FILE={target} (with OWS_WALLET={infos[0]['name']})", "warnings": warnings}

    @_binding_errors
    def list_keys(self) -> dict:
        rows = self._keys()
        return {"vault": self.label, "count": len(rows), "keys": rows}

    @_binding_errors
    def revoke_key(self, key_id: str, confirm: Callable[..., None]) -> dict:
        """``confirm(question, details=...)`` returns to go ahead and raises to stop."""
        rows = self._keys()
        match = [r for r in rows if r["id"] == key_id] or [r for r in rows if r["name"] == key_id]
        if not match:
            raise UsageError(f"No API key {key_id!r} in {self.label}.", code="ows_key_not_found", hint="See key-list.")
        if len(match) > 1:
            raise UsageError(f"Several keys are named {key_id!r}; pass the id.", details=[r["id"] for r in match])
        key = match[0]
        confirm(f"Revoke OWS API key {key['name']} ({key['id']})? Agents using its token stop signing.", details=key)
        try:
            self._ows.revoke_api_key(key["id"], vault_path_opt=self.vault)
        except RuntimeError as e:
            raise W.map_error(e, vault=self.vault) from None
        return {"revoked": key}


# -- ows_cli.py: the subcommands and their text for people ------------------------------

def _created(verb: str, d: dict) -> str:
    w = d["wallet"]
    return f"{verb} wallet {w['name']} ({w['id']})\n  EVM:    {w['evm_address']}\n  Solana: {w['solana_address']}"


def _notes(text: str, d: dict) -> str:
    return text + "".join(f"\nnote: {w}" for w in d.get("warnings", []))


def _key_rows(d: dict) -> list[dict]:
    return [{**r, "wallets": ",".join(w["name"] or w["id"] for w in r["wallets"]), "policy_ids": ",".join(r["policy_ids"])} for r in d["keys"]]


# What a human sees with -o text; the JSON document is the contract and comes from the library.
TEXT = {
    "wallet-list": lambda d: _table(d["wallets"], [("name", "NAME"), ("id", "ID"), ("evm_address", "EVM"), ("solana_address", "SOLANA")]),
    "wallet-create": lambda d: _created("Created", d) + (f"\n  Mnemonic (shown once): {d['mnemonic']}" if "mnemonic" in d else "\n" + d["backup"]),
    "wallet-import": lambda d: _notes(_created("Imported", d), d),
    "address": lambda d: d["address"] if "chain" in d else f"EVM:    {d['evm']}\nSolana: {d['solana']}",
    "sign-message": lambda d: d["signature"],
    "key-create": lambda d: _notes(
        f"Created API key {d['key']['name']} ({d['key']['id']}); token written to {d['token_file']} (mode 0600).\nUse: {d['use']}"
        if "token_file" in d
        else f"Created API key {d['key']['name']} ({d['key']['id']})\nToken (shown once): {d['token']}",
        d,
    ),
    "key-list": lambda d: _table(_key_rows(d), [("name", "NAME"), ("id", "ID"), ("wallets", "WALLETS"), ("policy_ids", "POLICIES"), ("expires_at", "EXPIRES")]),
    "key-revoke": lambda d: f"Revoked {d['revoked']['name']} ({d['revoked']['id']}).",
}


def ows_command(ctx):
    """ows_cli.py: run the chosen subcommand; the JSON document comes from ``OwsAdmin``."""
    a = ctx.args
    admin = OwsAdmin(a.vault, lambda: ctx.settings)
    run = {
        "wallet-list": lambda: admin.list_wallets(),
        "wallet-create": lambda: admin.create_wallet(a.name, words=a.words, show_mnemonic=a.show_mnemonic, allow_empty_passphrase=a.no_passphrase),
        "wallet-import": lambda: admin.import_wallet(
            a.name, mnemonic_env=a.mnemonic_env, private_key_env=a.private_key_env, solana_key_env=a.solana_key_env, stdin=a.stdin, allow_empty_passphrase=a.no_passphrase
        ),
        "address": lambda: admin.address(a.wallet, a.chain),
        "sign-message": lambda: admin.sign_message(a.wallet, a.message, chain=a.chain, encoding=a.encoding),
        "key-create": lambda: admin.create_key(a.name, wallets=a.wallet, policies=a.policy, allow_chains=a.allow_chain, expires_at=a.expires_at, save=a.save),
        "key-list": lambda: admin.list_keys(),
        "key-revoke": lambda: admin.revoke_key(a.id, ctx.confirm),
    }
    data = run[a.command]()
    return Output(data, TEXT[a.command](data))


def _table(rows, columns):
    return table(rows, columns)


# -- ows_cli.py: its parser (the script and the MCP server both build it here) ------

OWS_CLI_HELP = """Manage the Open Wallet Standard (OWS) vault this skill signs with: wallets,
addresses, test signatures and agent API tokens. Uses the Python binding
(pip install open-wallet-standard); no Node or ows binary is needed.

Secrets never go through argv: passphrases come from OWS_PASSPHRASE /
OWS_PASSPHRASE_FILE or a hidden prompt, imported keys from a named environment
variable or stdin. Mnemonics and API tokens are printed only when asked for or
when there is no other way to hand them over (a new token is shown once).

Settings: OWS_WALLET (default --wallet), OWS_VAULT_PATH (default --vault;
else ~/.ows), OWS_PASSPHRASE or OWS_PASSPHRASE_FILE (passphrase or ows_key_ token).
"""


def ows_cli_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "ows_cli.py",
        OWS_CLI_HELP,
        examples="""python scripts/ows_cli.py wallet-create --name agent
OWS_PASSPHRASE=... python scripts/ows_cli.py wallet-import --name me --private-key-env PRIVATE_KEY --solana-key-env SOLANA_SECRET_KEY
python scripts/ows_cli.py address --wallet agent
python scripts/ows_cli.py key-create --name bot --wallet agent --allow-chain base --allow-chain solana --expires-at 2026-12-31 --save
python scripts/ows_cli.py key-list
python scripts/ows_cli.py key-revoke --id <key-id> --yes""",
    )
    p.add_argument("--vault", metavar="PATH", help="OWS vault root (default: OWS_VAULT_PATH, else ~/.ows)")

    # Options accepted after the subcommand too; SUPPRESS keeps a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--vault", metavar="PATH", default=argparse.SUPPRESS, help="OWS vault root (default: OWS_VAULT_PATH, else ~/.ows)")
    common.add_argument("--output", "-o", choices=("json", "text"), default=argparse.SUPPRESS, help="json (default when piped) or text")
    common.add_argument("--env-file", metavar="PATH", default=argparse.SUPPRESS, help="read settings from this .env file")

    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)


    def _cmd(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common])


    def _wallet_opt(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--wallet", "-w", metavar="W", help="wallet name or id (default: OWS_WALLET)")


    _cmd("wallet-list", "List the wallets in the vault with their EVM and Solana addresses.")

    sp = _cmd("wallet-create", "Create a wallet from a fresh BIP-39 mnemonic (encrypted in the vault).")
    sp.add_argument("--name", required=True)
    sp.add_argument("--words", type=int, choices=(12, 24), default=12)
    sp.add_argument("--show-mnemonic", action="store_true", help="print the mnemonic once (for an offline backup); otherwise it never leaves the vault")
    sp.add_argument("--no-passphrase", action="store_true", help="allow an empty passphrase when OWS_PASSPHRASE is unset and there is no terminal")

    sp = _cmd("wallet-import", "Import a mnemonic or private key(s) from an environment variable or stdin (never argv).")
    sp.add_argument("--name", required=True)
    sp.add_argument("--mnemonic-env", metavar="VAR", help="environment variable holding a BIP-39 mnemonic")
    sp.add_argument("--private-key-env", metavar="VAR", help="variable holding a key: 64-hex secp256k1 (EVM), or a Solana keypair/seed (base58 or JSON byte array)")
    sp.add_argument("--solana-key-env", metavar="VAR", help="variable holding the Solana key (base58/JSON keypair, or 64-hex seed); with --private-key-env both accounts are yours")
    sp.add_argument("--stdin", action="store_true", help="read one mnemonic or key from stdin")
    sp.add_argument("--no-passphrase", action="store_true", help="allow an empty passphrase when OWS_PASSPHRASE is unset and there is no terminal")

    sp = _cmd("address", "Show a wallet's EVM and/or Solana address (no passphrase needed).")
    _wallet_opt(sp)
    sp.add_argument("--chain", choices=("evm", "solana"), help="only this address")

    sp = _cmd("sign-message", "Sign a message with a vault key (EIP-191 on EVM, raw ed25519 on Solana).")
    _wallet_opt(sp)
    sp.add_argument("--message", "-m", required=True, help="the message (UTF-8 text, or hex with --encoding hex)")
    sp.add_argument("--chain", default="evm", help="evm (= Base, eip155:8453; default), solana, or an OWS chain / CAIP-2 id such as eip155:4217")
    sp.add_argument("--encoding", choices=("utf8", "hex"), default="utf8")

    sp = _cmd("key-create", "Create an agent API token (ows_key_…) for wallets; it stands in for the passphrase.")
    sp.add_argument("--name", required=True)
    sp.add_argument("--wallet", "-w", action="append", metavar="W", help="wallet name or id; repeatable (default: OWS_WALLET)")
    sp.add_argument("--policy", action="append", default=[], metavar="P", help="id of an existing OWS policy; repeatable")
    sp.add_argument("--allow-chain", action="append", default=[], metavar="C", help=f"only these chains ({CHAIN_NAMES} or CAIP-2); repeatable; creates an allowed_chains policy")
    sp.add_argument("--expires-at", metavar="ISO", help="expiry, e.g. 2026-12-31 or 2026-12-31T18:00:00Z (no zone = UTC)")
    sp.add_argument("--save", nargs="?", const="", metavar="PATH", help="write the token to a new 0600 file instead of printing it (default file: <state dir>/ows-keys/<key id>.token)")

    _cmd("key-list", "List API tokens (metadata only; tokens are never stored in clear).")

    sp = _cmd("key-revoke", "Revoke an API token; agents using it can no longer sign.")
    sp.add_argument("--id", required=True, help="key id (or its unique name)")
    cli.add_yes(sp, "revoke")
    return p
