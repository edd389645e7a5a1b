#!/usr/bin/env python3
"""Manage the Open Wallet Standard (OWS) vault this skill signs with: wallets,
addresses, test signatures and agent API tokens. Uses the Python binding
(pip install open-wallet-standard); no Node or ows binary is needed.

Secrets never go through argv: passphrases come from OWS_PASSPHRASE /
OWS_PASSPHRASE_FILE or a hidden prompt, imported keys from a named environment
variable or stdin. Mnemonics and API tokens are printed only when asked for or
when there is no other way to hand them over (a new token is shown once).

Settings: OWS_WALLET (default --wallet), OWS_VAULT_PATH (default --vault;
else ~/.ows), OWS_PASSPHRASE or OWS_PASSPHRASE_FILE (passphrase or ows_key_ token).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from x402_compute import cli
from x402_compute.errors import ComputeError, ConfigError, UsageError
from x402_compute.wallets import ows as W

p = cli.parser(
    "ows_cli.py",
    __doc__,
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
sp.add_argument("--allow-chain", action="append", default=[], metavar="C", help="only these chains (base, solana, megaeth, robinhood, tempo or CAIP-2); repeatable; creates an allowed_chains policy")
sp.add_argument("--expires-at", metavar="ISO", help="expiry, e.g. 2026-12-31 or 2026-12-31T18:00:00Z (no zone = UTC)")
sp.add_argument("--save", nargs="?", const="", metavar="PATH", help="write the token to a new 0600 file instead of printing it (default file: <state dir>/ows-keys/<key id>.token)")

_cmd("key-list", "List API tokens (metadata only; tokens are never stored in clear).")

sp = _cmd("key-revoke", "Revoke an API token; agents using it can no longer sign.")
sp.add_argument("--id", required=True, help="key id (or its unique name)")
cli.add_yes(sp, "revoke")


# -- helpers ---------------------------------------------------------------------------


def _env(ctx: cli.Context):
    return ctx.settings.env


def _vault(ctx: cli.Context) -> str | None:
    v = getattr(ctx.args, "vault", None)
    return str(Path(v).expanduser()) if v else W.vault_path(_env(ctx))


def _wallet_name(ctx: cli.Context) -> str:
    w = getattr(ctx.args, "wallet", None) or (_env(ctx).get("OWS_WALLET") or "").strip()
    if not w:
        raise UsageError("No wallet given.", hint="Pass --wallet or set OWS_WALLET (see wallet-list).")
    return w


def _summary(info: dict) -> dict:
    return {
        "id": info["id"],
        "name": info["name"],
        "created_at": info.get("created_at"),
        "evm_address": W.account_address(info, "eip155:"),
        "solana_address": W.account_address(info, "solana:"),
    }


def _new_passphrase(ctx: cli.Context, name: str) -> str:
    """The passphrase that will encrypt a new wallet."""
    value = W.env_secret(_env(ctx))
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
    if getattr(ctx.args, "no_passphrase", False):
        return ""
    raise ConfigError(
        "No passphrase for the new wallet: OWS_PASSPHRASE is unset and there is no terminal to ask.",
        hint="Set OWS_PASSPHRASE (or OWS_PASSPHRASE_FILE), or pass --no-passphrase to store the key without one.",
    )


def _owner_passphrase(ctx: cli.Context, wallet: str) -> str:
    """The owner's passphrase (key-create refuses API tokens: a token cannot mint tokens)."""
    value = W.env_secret(_env(ctx))
    if value is None:
        value = W.prompt_secret(f"Passphrase for wallet {wallet!r}: ") if W.interactive() else ""
    if W.is_api_token(value):
        raise ConfigError(
            "key-create needs the wallet owner's passphrase, but OWS_PASSPHRASE holds an API token.",
            hint="Run it with the passphrase in OWS_PASSPHRASE (or at the prompt).",
        )
    return value


def _binding_error(e: RuntimeError, ctx: cli.Context, **kw) -> ComputeError:
    return W.map_error(e, vault=_vault(ctx), **kw)


_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def _read_env_var(ctx: cli.Context, var: str) -> str:
    value = (_env(ctx).get(var) or "").strip()
    if not value:
        raise UsageError(f"The environment variable {var} is empty or unset.", hint="Export the secret in that variable, or use --stdin.")
    return value


def _solana_seed(text: str, *, hex_is_seed: bool) -> str | None:
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


def _classify_key(text: str) -> tuple[str, str]:
    """("secp256k1" | "ed25519", hex) for a single private key; never echoes the value."""
    text = text.strip()
    if _HEX64.match(text):
        return "secp256k1", text.removeprefix("0x").lower()
    seed = _solana_seed(text, hex_is_seed=False)
    if seed:
        return "ed25519", seed
    raise UsageError(
        "The key is neither a 64-hex EVM key nor a Solana keypair/seed (base58 or JSON byte array).",
        hint="The value was not printed. Check the variable or stdin content.",
    )


def _parse_expiry(text: str) -> str:
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


def _chain_id(name: str) -> str:
    """A chain for OWS: our network names to CAIP-2, 'evm' to Base; anything else is passed through."""
    from x402_compute.networks import NETWORKS

    low = name.strip().lower()
    if low == "evm":
        return "eip155:8453"
    if low in NETWORKS:
        return NETWORKS[low].caip2
    if low.isdigit():
        return f"eip155:{low}"
    return name.strip()


# -- subcommands -----------------------------------------------------------------------


def wallet_list(ctx, ows):
    vault = _vault(ctx)
    rows = [_summary(w) for w in ows.list_wallets(vault_path_opt=vault)]
    text = cli.table(rows, [("name", "NAME"), ("id", "ID"), ("evm_address", "EVM"), ("solana_address", "SOLANA")])
    return cli.Output({"vault": W.vault_label(vault), "count": len(rows), "wallets": rows}, text)


def wallet_create(ctx, ows):
    a, vault = ctx.args, _vault(ctx)
    passphrase = _new_passphrase(ctx, a.name)
    data: dict = {"vault": W.vault_label(vault)}
    try:
        if a.show_mnemonic:
            # Generated here only because the user asked to see it; otherwise it stays inside the binding.
            mnemonic = ows.generate_mnemonic(a.words)
            info = ows.import_wallet_mnemonic(a.name, mnemonic, passphrase=passphrase, vault_path_opt=vault)
            data["mnemonic"] = mnemonic
            data["warning"] = "This mnemonic controls the funds. Write it down offline now; it is not shown again. Anyone with it can spend."
        else:
            info = ows.create_wallet(a.name, passphrase=passphrase, words=a.words, vault_path_opt=vault)
            data["backup"] = (
                f"The mnemonic was not shown. Back up {W.vault_label(vault)}/wallets/{info['id']}.json (encrypted) "
                "together with the passphrase, or create wallets with --show-mnemonic for a paper backup."
            )
    except RuntimeError as e:
        raise _binding_error(e, ctx, wallet=a.name) from None
    data["wallet"] = _summary(info)
    data["passphrase_set"] = bool(passphrase)
    text = f"Created wallet {info['name']} ({info['id']})\n  EVM:    {data['wallet']['evm_address']}\n  Solana: {data['wallet']['solana_address']}"
    if "mnemonic" in data:
        print("WARNING: the mnemonic below is shown once and controls the funds; store it offline.", file=sys.stderr)
        text += f"\n  Mnemonic (shown once): {data['mnemonic']}"
    else:
        text += "\n" + data["backup"]
    return cli.Output(data, text)


def wallet_import(ctx, ows):
    a, vault = ctx.args, _vault(ctx)
    sources = [x for x in (a.mnemonic_env, a.private_key_env, a.stdin) if x]
    if len(sources) != 1 and not (a.solana_key_env and not sources):
        raise UsageError("Give exactly one of --mnemonic-env, --private-key-env, --stdin (--solana-key-env may join --private-key-env).")
    if a.solana_key_env and (a.mnemonic_env or a.stdin):
        raise UsageError("--solana-key-env combines only with --private-key-env.")

    mnemonic = secp = ed = None
    if a.mnemonic_env:
        mnemonic = " ".join(_read_env_var(ctx, a.mnemonic_env).split())
    elif a.stdin:
        raw = sys.stdin.read().strip()
        if not raw:
            raise UsageError("Nothing on stdin.")
        if len(raw.split()) >= 12:
            mnemonic = " ".join(raw.split())
        else:
            kind, hexkey = _classify_key(raw)
            secp, ed = (hexkey, None) if kind == "secp256k1" else (None, hexkey)
    if a.private_key_env:
        kind, hexkey = _classify_key(_read_env_var(ctx, a.private_key_env))
        secp, ed = (hexkey, None) if kind == "secp256k1" else (None, hexkey)
    if a.solana_key_env:
        if ed:
            raise UsageError("--private-key-env already holds a Solana key; use --solana-key-env for the Solana key and --private-key-env for the EVM key.")
        ed = _solana_seed(_read_env_var(ctx, a.solana_key_env), hex_is_seed=True)
        if not ed:
            raise UsageError(f"{a.solana_key_env} is not a Solana keypair or seed (base58, JSON byte array, or 64 hex).", hint="The value was not printed.")

    passphrase = _new_passphrase(ctx, a.name)
    warnings = []
    try:
        if mnemonic:
            info = ows.import_wallet_mnemonic(a.name, mnemonic, passphrase=passphrase, vault_path_opt=vault)
            kind = "mnemonic"
        elif secp and ed:
            info = ows.import_wallet_private_key(a.name, "", passphrase=passphrase, vault_path_opt=vault, secp256k1_key=secp, ed25519_key=ed)
            kind = "private_keys"
        elif secp:
            info = ows.import_wallet_private_key(a.name, secp, passphrase=passphrase, vault_path_opt=vault)
            kind = "private_key"
            warnings.append("Only an EVM key was imported: OWS generated a random Solana key for this wallet. Add --solana-key-env to import yours.")
        else:
            info = ows.import_wallet_private_key(a.name, ed, chain="solana", passphrase=passphrase, vault_path_opt=vault)
            kind = "private_key"
            warnings.append("Only a Solana key was imported: OWS generated a random EVM key for this wallet. Add --private-key-env to import yours.")
    except RuntimeError as e:
        if "already exists" in str(e):
            raise _binding_error(e, ctx, wallet=a.name) from None
        # The binding's detail can quote part of the secret (the invalid word, the bad hex character):
        # keep only its summary before the first colon.
        summary = str(e).split(":", 1)[0].strip() or "rejected"
        raise UsageError(f"OWS refused the {kind_label(mnemonic)}: {summary}.", code="ows_invalid_secret", hint="The value was not printed. Check the variable or stdin content.") from None
    data = {"vault": W.vault_label(vault), "wallet": _summary(info), "imported": kind, "passphrase_set": bool(passphrase), "warnings": warnings}
    text = f"Imported wallet {info['name']} ({info['id']})\n  EVM:    {data['wallet']['evm_address']}\n  Solana: {data['wallet']['solana_address']}"
    for w in warnings:
        text += f"\nnote: {w}"
    return cli.Output(data, text)


def kind_label(mnemonic) -> str:
    return "mnemonic" if mnemonic else "private key"


def _get_wallet(ctx, ows, name: str) -> dict:
    try:
        return ows.get_wallet(name, vault_path_opt=_vault(ctx))
    except RuntimeError as e:
        raise _binding_error(e, ctx, wallet=name) from None


def address(ctx, ows):
    info = _get_wallet(ctx, ows, _wallet_name(ctx))
    s = _summary(info)
    data: dict = {"wallet": {"id": s["id"], "name": s["name"]}, "evm": s["evm_address"], "solana": s["solana_address"]}
    if ctx.args.chain:
        data["chain"] = ctx.args.chain
        data["address"] = data[ctx.args.chain]
        if not data["address"]:
            raise ConfigError(f"Wallet {s['name']!r} has no {ctx.args.chain} account.", code="ows_no_account")
        return cli.Output(data, data["address"])
    return cli.Output(data, f"EVM:    {data['evm']}\nSolana: {data['solana']}")


def sign_message(ctx, ows):
    a = ctx.args
    name = _wallet_name(ctx)
    chain = _chain_id(a.chain)
    solana = chain.startswith("solana")
    if a.encoding == "hex" and not re.fullmatch(r"(0x)?([0-9a-fA-F]{2})*", a.message):
        raise UsageError("--encoding hex needs an even number of hex digits.")
    message = a.message.removeprefix("0x") if a.encoding == "hex" else a.message
    wallet = W.OwsWallet(name, vault=_vault(ctx), env=_env(ctx))
    addr = wallet.account("solana:" if solana else "eip155:")
    res = wallet.call("sign_message", chain, message, encoding=a.encoding)
    sig_hex = str(res["signature"]).removeprefix("0x")
    data = {"wallet": {"id": wallet.id, "name": wallet.name}, "chain": chain, "address": addr, "encoding": a.encoding, "signature_hex": sig_hex}
    if solana:
        import base58

        data["signature"] = base58.b58encode(bytes.fromhex(sig_hex)).decode()  # Solana's usual text form
        data["scheme"] = "ed25519"
    else:
        data["signature"] = "0x" + sig_hex
        data["recovery_id"] = res.get("recovery_id")
        data["scheme"] = "eip191"
    return cli.Output(data, data["signature"])


def _allowed_chains_policy(ctx, ows, chains: list[str]) -> str:
    """An allowed_chains policy for these chains (reused if the same set already exists)."""
    vault = _vault(ctx)
    ids = sorted({_chain_id(c) for c in chains})
    pid = "allow-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]
    try:
        ows.get_policy(pid, vault_path_opt=vault)
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
        ows.create_policy(json.dumps(policy), vault_path_opt=vault)
    except RuntimeError as e:
        raise _binding_error(e, ctx) from None
    return pid


def _token_target(ctx, key_name: str) -> Path | None:
    """Where --save writes, checked before the key exists so a failed write cannot lose a token."""
    save = ctx.args.save
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


def _write_token(path: Path, token: str) -> None:
    # Not state.write_private: that one also tightens the parent directory to 0700, which is right
    # for our state dir but not for a directory the user named. O_EXCL: never replace a file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def key_create(ctx, ows):
    a, vault = ctx.args, _vault(ctx)
    names = a.wallet or [_wallet_name(ctx)]
    wallets = [_get_wallet(ctx, ows, n) for n in names]
    expires = _parse_expiry(a.expires_at) if a.expires_at else None
    target = _token_target(ctx, a.name)
    policies = list(dict.fromkeys(a.policy))
    for pid in policies:
        try:
            ows.get_policy(pid, vault_path_opt=vault)
        except RuntimeError:
            raise UsageError(f"OWS policy {pid!r} does not exist.", hint="Use --allow-chain to create a chain policy.") from None
    passphrase = _owner_passphrase(ctx, wallets[0]["name"])
    if a.allow_chain:
        policies.append(_allowed_chains_policy(ctx, ows, a.allow_chain))
    try:
        res = ows.create_api_key(a.name, [w["id"] for w in wallets], policies, passphrase, expires_at=expires, vault_path_opt=vault)
    except RuntimeError as e:
        raise _binding_error(e, ctx, wallet=wallets[0]["name"]) from None
    token = res["token"]
    key = {"id": res["id"], "name": res["name"], "wallets": [{"id": w["id"], "name": w["name"]} for w in wallets], "policy_ids": policies, "expires_at": expires}
    warnings = []
    if not policies:
        warnings.append("No policy: this token can sign anything on these wallets, on any chain, until it expires or is revoked. Consider --allow-chain.")
    if not expires:
        warnings.append("No expiry: the token works until revoked (key-revoke).")

    if a.save is not None:
        try:
            if target is None:
                from x402_compute.state import write_private

                target = ctx.settings.state_dir / "ows-keys" / f"{res['id']}.token"
                write_private(target, token + "\n", exclusive=True)
            else:
                _write_token(target, token)
        except (OSError, ComputeError) as e:
            # The token is unrecoverable if it cannot be stored: revoke it rather than leave a live orphan.
            try:
                ows.revoke_api_key(res["id"], vault_path_opt=vault)
            except RuntimeError:
                pass
            raise ComputeError(f"Could not write the token to {target}: {e}; the key was revoked.", code="token_not_saved") from None
        data = {"key": key, "token_file": str(target), "use": f"OWS_PASSPHRASE_FILE={target} (with OWS_WALLET={wallets[0]['name']})", "warnings": warnings}
        text = f"Created API key {key['name']} ({key['id']}); token written to {target} (mode 0600).\nUse: {data['use']}"
    else:
        print(
            "WARNING: the API token below is shown ONCE and cannot be recovered. Store it now in a secret store "
            "(or re-run with --save to write it to a 0600 file). Keep it out of logs and shell history.",
            file=sys.stderr,
        )
        data = {"key": key, "token": token, "use": "OWS_PASSPHRASE=<token> (with OWS_WALLET)", "warning": "Shown once; it cannot be displayed again.", "warnings": warnings}
        text = f"Created API key {key['name']} ({key['id']})\nToken (shown once): {token}"
    for w in warnings:
        text += f"\nnote: {w}"
    return cli.Output(data, text)


def _keys(ctx, ows) -> list[dict]:
    vault = _vault(ctx)
    wallet_names = {w["id"]: w["name"] for w in ows.list_wallets(vault_path_opt=vault)}
    now = datetime.now(timezone.utc)
    rows = []
    for k in ows.list_api_keys(vault_path_opt=vault):
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


def key_list(ctx, ows):
    rows = _keys(ctx, ows)
    flat = [{**r, "wallets": ",".join(w["name"] or w["id"] for w in r["wallets"]), "policy_ids": ",".join(r["policy_ids"])} for r in rows]
    text = cli.table(flat, [("name", "NAME"), ("id", "ID"), ("wallets", "WALLETS"), ("policy_ids", "POLICIES"), ("expires_at", "EXPIRES")])
    return cli.Output({"vault": W.vault_label(_vault(ctx)), "count": len(rows), "keys": rows}, text)


def key_revoke(ctx, ows):
    rows = _keys(ctx, ows)
    match = [r for r in rows if r["id"] == ctx.args.id] or [r for r in rows if r["name"] == ctx.args.id]
    if not match:
        raise UsageError(f"No API key {ctx.args.id!r} in {W.vault_label(_vault(ctx))}.", code="ows_key_not_found", hint="See key-list.")
    if len(match) > 1:
        raise UsageError(f"Several keys are named {ctx.args.id!r}; pass the id.", details=[r["id"] for r in match])
    key = match[0]
    ctx.confirm(f"Revoke OWS API key {key['name']} ({key['id']})? Agents using its token stop signing.", details=key)
    try:
        ows.revoke_api_key(key["id"], vault_path_opt=_vault(ctx))
    except RuntimeError as e:
        raise _binding_error(e, ctx) from None
    return cli.Output({"revoked": key}, f"Revoked {key['name']} ({key['id']}).")


COMMANDS = {
    "wallet-list": wallet_list,
    "wallet-create": wallet_create,
    "wallet-import": wallet_import,
    "address": address,
    "sign-message": sign_message,
    "key-create": key_create,
    "key-list": key_list,
    "key-revoke": key_revoke,
}


def main(ctx: cli.Context) -> cli.Output:
    ows = W.load_binding()
    try:
        return COMMANDS[ctx.args.command](ctx, ows)
    except RuntimeError as e:  # binding calls without their own mapping
        raise _binding_error(e, ctx) from None


if __name__ == "__main__":
    cli.run(p, main)
