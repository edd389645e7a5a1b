"""The commands on existing instances: list_instances.py, instance_details.py, resize_instance.py,
destroy_instance.py, get_one_time_password.py (management auth; nothing here pays)."""

from __future__ import annotations

import argparse
import fnmatch
from decimal import Decimal

from .. import aimachines, cli, plans
from ..aimachines import KEY_FOLDER
from ..errors import ComputeError, Conflict, UsageError
from ..instances import NO_ADDRESS, STATES, detail, public_ip, ssh_fields, summary, unwrap_order
from ..payments.journal import ledger_of
from ..ssh.hostkeys import HostKeys
from ..ssh.keys import RECORDS, login_block, ssh_block_for
from ..state import ensure_dir, read_json, write_private_json
from ..validate import instance_id, plan_id, server_instance_id

GONE = ("destroyed", "expired")
RESIZABLE = ("running", "stopped")  # the API's "active" instances
LIST_COLUMNS = [("id", "ID"), ("label", "LABEL"), ("plan", "PLAN"), ("region", "REGION"), ("state", "STATE"), ("ip", "IP"),
                ("expires_at", "EXPIRES"), ("hours_left", "HOURS LEFT")]


def _ssh(ctx: cli.Context, order: dict, state: str) -> dict | None:
    # A machine that is gone has no way in, whatever address its record still carries.
    return None if state in GONE else ssh_block_for(ctx.state, order)


def list_row(ctx: cli.Context, order: dict) -> dict:
    row = summary(order)
    row["ssh"] = _ssh(ctx, order, row["state"])
    row["ai"] = aimachines.block(ctx.state, order)
    return row


# -- list_instances -------------------------------------------------------------------------

def list_instances(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    rows = [list_row(ctx, o) for o in ctx.client.list_instances() if isinstance(o, dict)]
    if not a.all and a.state not in GONE:
        rows = [r for r in rows if r["state"] not in GONE]
    if a.state:
        rows = [r for r in rows if r["state"] == a.state]
    if a.label:
        rows = [r for r in rows if a.label.lower() in (r.get("label") or "").lower()]
    if a.expiring_within is not None:
        rows = [r for r in rows if r["hours_left"] is not None and r["hours_left"] <= a.expiring_within]
    return cli.Output({"count": len(rows), "instances": rows}, cli.table(rows, LIST_COLUMNS))


# -- instance_details -----------------------------------------------------------------------

def instance_details(ctx: cli.Context) -> cli.Output:
    iid = instance_id(ctx.args.instance_id)
    order = ctx.client.get_instance(iid)
    d = detail(order)
    d["ssh"] = _ssh(ctx, order, d["state"])
    d["ai"] = aimachines.block(ctx.state, order)
    plan = plans.lookup_quietly(ctx.client, d["plan"]) if d["state"] not in GONE else None
    d["hourly_usd"] = plans.hourly_usd(plan)
    d["prepaid_value_remaining_usd"] = plans.prepaid_value_usd(d["hours_left"], plan)
    ssh = d["ssh"]
    keys = ("id", "label", "plan", "region", "state", "ip", "expires_at", "hours_left", "hourly_usd", "prepaid_value_remaining_usd")
    lines = [f"{k}: {'' if d.get(k) is None else d.get(k)}" for k in keys]
    lines.append(f"ssh: {ssh['command']}" if ssh else f"ssh: unavailable ({d['ssh_unavailable']})")
    if ssh and ssh.get("note"):
        lines.append(f"note: {ssh['note']}")
    if d["ai"]:
        lines.append(f"ai: {d['ai']['model_id']} at {d['ai']['endpoint'] or '(no endpoint yet)'}; {d['ai']['note']}")
    return cli.Output({"instance": d}, "\n".join(lines))


# -- resize_instance ------------------------------------------------------------------------

def _downtime(provider: str | None) -> str:
    how = "DigitalOcean powers the droplet off to resize" if provider == "digitalocean" else "its status is resizing until the provider is done"
    return f"The instance is unavailable while it resizes ({how}); running work stops and SSH sessions drop."


def resize_quote(ctx: cli.Context, iid: str, target_id: str, *, confirm_disk_resize: bool) -> dict:
    """Everything resize_instance.py checks and expects, without calling the API's resize:
    the rule checks, the old and new expiry, the credit carried over and the downtime."""
    inst = summary(ctx.client.get_instance(iid))
    catalog = ctx.client.all_plans()
    by_id = {x.get("id"): x for x in catalog}
    current, target = by_id.get(inst["plan"]), by_id.get(target_id)
    preview = plans.resize_preflight(current, target, catalog, inst["region"], confirm_disk_resize=confirm_disk_resize, target_id=target_id,
                                     instance_id=iid, hours_left=inst.get("hours_left"))
    provider = plans.provider(target) if target else None
    irreversible = bool(preview.get("grows_disk")) and provider == "digitalocean"
    est = plans.resize_estimate(current, target, inst["expires_at"])
    return {
        "action": "resize",
        "instance_id": iid,
        "state": inst["state"],
        "provider": provider,
        "region": inst["region"],
        "from_plan": inst["plan"],
        "to_plan": target_id,
        "checks": preview["checks"],
        "hourly_usd_before": plans.hourly_usd(current),
        "hourly_usd_after": plans.hourly_usd(target),
        "old_expires_at": inst["expires_at"],
        "new_expires_at_estimate": est["new_expires_at"],
        "remaining_hours_before": est["remaining_hours_before"],
        "remaining_hours_after_estimate": est["remaining_hours_after"],
        "remaining_credit_usd_estimate": est["remaining_credit_usd"],
        "downtime": _downtime(provider),
        "irreversible": irreversible,
        "plans": {"from": preview["from"], "to": preview["to"]},
        "sent": False,
    }


def resize(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    iid, target_id = instance_id(a.instance_id), plan_id(a.plan)
    q = resize_quote(ctx, iid, target_id, confirm_disk_resize=a.confirm_disk_resize)
    if a.quote:
        if q["state"] not in RESIZABLE:
            # What the real run would meet (409): a quote must never read as a go.
            raise Conflict(
                f"Instance {iid} is {q['state']}: the API refuses a resize (409) until it is running again. Nothing was sent.",
                details={"quote": q},
                hint="Check it with instance_details.py and quote again once its state is running.",
            )
        text = "\n".join([
            f"resize {iid}: {q['from_plan']} -> {q['to_plan']} ({q['provider']}, {q['region']}); nothing was sent",
            f"checks passed: {', '.join(q['checks'])}",
            f"expiry: {q['old_expires_at']} -> about {q['new_expires_at_estimate']}",
            f"credit carried over: about ${q['remaining_credit_usd_estimate']} ({q['remaining_hours_before']} h -> about {q['remaining_hours_after_estimate']} h)",
            f"downtime: {q['downtime']}",
            *(["irreversible: the disk grows and can never be shrunk back"] if q["irreversible"] else []),
        ])
        return cli.Output({"quote": q}, text)
    ctx.progress(f"resizing {iid} from {q['from_plan']} to {target_id}: {q['downtime']}")
    try:
        r = ctx.client.resize(iid, target_id, confirm_disk_resize=a.confirm_disk_resize)
    except Conflict as e:
        e.hint = "The instance must be active and not already resizing; check it with instance_details.py and retry later."
        raise
    keys = ("provider", "from_plan", "to_plan", "old_expires_at", "new_expires_at", "remaining_credit", "remaining_hours_before", "remaining_hours_after", "provider_action_id")
    data = {"instance_id": iid, **{k: r.get(k) for k in keys}, "plans": q["plans"], "response": r}
    text = f"resizing {iid}: {data['from_plan'] or q['from_plan']} -> {data['to_plan'] or target_id}\nexpiry: {data['old_expires_at']} -> {data['new_expires_at']}\ncredit kept: ${data['remaining_credit']}"
    return cli.Output(data, text)


# -- destroy_instance -----------------------------------------------------------------------

def _after_destroy(ctx: cli.Context, iid: str, response: dict, before: dict) -> dict:
    """The instance as it is after the DELETE: read back from the API; if it cannot be read, the
    DELETE's own order record; else the record from before, marked destroyed (the DELETE answered
    success)."""
    try:
        return summary(ctx.client.get_instance(iid))
    except ComputeError as e:
        ctx.progress(f"destroyed; reading {iid} back failed ({e.code}), showing the DELETE's answer")
    order = unwrap_order(response)
    if order.get("id") == iid:
        return summary(order)
    return {**before, "state": "destroyed", "ip": None, "hours_left": 0.0}


def _selector(a) -> str:
    """Which form of destroy_instance.py: ``one``, ``many`` or ``forget``; a usage error unless exactly one is given."""
    given = [name for name, on in (("an instance id", a.instance_id), ("--all", a.all), ("--label", a.label is not None),
                                   ("--forget-destroyed", a.forget_destroyed)) if on]
    if len(given) != 1:
        raise UsageError(
            f"Give exactly one of an instance id, --all, --label PATTERN or --forget-destroyed (got {', '.join(given) or 'none'}).",
            hint="E.g. destroy_instance.py ID, destroy_instance.py --label 'ci-*', or destroy_instance.py --all.",
        )
    if a.forget_destroyed and a.forget_local:
        raise UsageError("--forget-local goes with a destroy; --forget-destroyed alone already forgets.")
    return "forget" if a.forget_destroyed else ("one" if a.instance_id else "many")


def forget_local(ctx: cli.Context, iid: str) -> list[str]:
    """Delete what this machine keeps about instance ``iid`` (its host key pin, keepalive state,
    saved management keys (``<id>.key`` and any second key ``<id>.key.2``, ...), one-time password
    and AI Machine key, owner and key records); the payment journal stays,
    it is the spending record. Returns the paths removed (or changed, for the shared records)."""
    iid = server_instance_id(iid, "instance id")
    st = ctx.state
    files = [HostKeys(st.root).file(iid), st.credentials_file(iid), st.path("keepalive", f"{iid}.json"), st.path("keepalive", f"{iid}.lock")]
    removed = []
    for f in files:  # each <state>/<folder>/<name>: deleted in that folder, never through a symlinked one
        try:
            gone = st.remove_file(*f.relative_to(st.root).parts)
        except ComputeError as e:
            ctx.progress(e.message)
            continue
        if gone:
            removed.append(str(gone))
    for folder in ("instance-keys", KEY_FOLDER):  # <id>.key and the second keys kept beside it (<id>.key.2, ...)
        try:
            removed += [str(p) for p in st.remove_key_files(folder, iid)]
        except ComputeError as e:
            ctx.progress(e.message)

    if ledger_of(ctx.settings).drop_keepalive(iid):  # keepalive's record lives in the ledger now
        removed.append(f"keepalive record ({iid})")
    for name in ("instance-owners.json", RECORDS):
        path = st.path(name)
        records = read_json(path, default={})
        if isinstance(records, dict) and iid in records:
            records.pop(iid)
            write_private_json(path, records)
            removed.append(f"{path} ({iid})")
    return removed


def _label_matches(pattern: str, label) -> bool:
    return isinstance(label, str) and fnmatch.fnmatchcase(label, pattern)


def destroy(ctx: cli.Context) -> cli.Output:
    form = _selector(ctx.args)
    if form == "many":
        return destroy_many(ctx)
    if form == "forget":
        return forget_destroyed(ctx)
    iid = instance_id(ctx.args.instance_id)
    inst = summary(ctx.client.get_instance(iid))
    if inst["state"] == "destroyed":
        raise ComputeError(f"Instance {iid} is already destroyed.", code="already_destroyed", details=inst)
    lost = plans.forfeited(inst["hours_left"], plans.lookup_quietly(ctx.client, inst["plan"]))
    usd = f" (about ${lost['usd']})" if lost["usd"] else ""
    ctx.confirm(
        f"Destroy {iid} ({inst['label'] or inst['plan']}, {inst['ip'] or 'no IP'})? This deletes its disk and forfeits {lost['hours']} prepaid hours{usd}.",
        details={**inst, "prepaid_time_lost": lost},
    )
    r = ctx.client.destroy_instance(iid)
    after = _after_destroy(ctx, iid, r, inst)
    data = {"destroyed": True, "instance": after, "prepaid_time_lost": lost, "response": r}
    if ctx.args.forget_local:
        data["forgotten"] = forget_local(ctx, iid)
    return cli.Output(data, f"destroyed {iid}: state {after['state']}, ip {after['ip'] or '-'}; {lost['hours']} prepaid hours{usd} forfeited")


def destroy_many(ctx: cli.Context) -> cli.Output:
    """--all / --label: this wallet's live instances (that match), one summary of what they
    forfeit, one confirmation, then each destroyed; one failure does not stop the others."""
    a = ctx.args
    rows = [summary(o) for o in ctx.client.list_instances() if isinstance(o, dict)]
    live = [r for r in rows if r["state"] not in GONE]
    chosen = live if a.all else [r for r in live if _label_matches(a.label, r.get("label"))]
    selector = {"all": True} if a.all else {"label": a.label}
    catalog = {}
    for r in chosen:
        if r["plan"] not in catalog:
            catalog[r["plan"]] = plans.lookup_quietly(ctx.client, r["plan"])
    targets = [{**r, "prepaid_time_lost": plans.forfeited(r["hours_left"], catalog[r["plan"]])} for r in chosen]
    total = {"hours": round(sum(t["prepaid_time_lost"]["hours"] or 0 for t in targets), 2),
             "usd": str(sum((Decimal(t["prepaid_time_lost"]["usd"]) for t in targets if t["prepaid_time_lost"]["usd"]), Decimal(0)).quantize(Decimal("0.01")))}
    if not targets:
        what = "no live instance" + ("" if a.all else f" with a label matching {a.label!r}")
        return cli.Output({"destroyed": True, "selector": selector, "count": 0, "results": [], "prepaid_time_lost": total},
                          f"nothing to destroy: {what}")
    listing = "; ".join(f"{t['id']} ({t['label'] or t['plan']}, {t['prepaid_time_lost']['hours']} h)" for t in targets)
    ctx.confirm(
        f"Destroy {len(targets)} instance(s): {listing}? This deletes their disks and forfeits {total['hours']} prepaid hours (about ${total['usd']}) in all.",
        details={"selector": selector, "instances": targets, "prepaid_time_lost": total},
    )
    results = []
    for t in targets:
        res: dict = {"id": t["id"], "destroyed": False, "instance": {k: v for k, v in t.items() if k != "prepaid_time_lost"},
                     "prepaid_time_lost": t["prepaid_time_lost"]}
        try:
            r = ctx.client.destroy_instance(t["id"])
        except ComputeError as e:
            res["error"] = e.to_dict()
            ctx.progress(f"could not destroy {t['id']}: {e.message}")
        else:
            res.update(destroyed=True, instance=_after_destroy(ctx, t["id"], r, res["instance"]))
            if a.forget_local:
                res["forgotten"] = forget_local(ctx, t["id"])
        results.append(res)
    done = sum(1 for r in results if r["destroyed"])
    data = {"destroyed": done == len(results), "selector": selector, "count": done, "results": results, "prepaid_time_lost": total}
    text = f"destroyed {done} of {len(results)} instance(s); {total['hours']} prepaid hours (about ${total['usd']}) forfeited"
    if done < len(results):
        failed = [r["id"] for r in results if not r["destroyed"]]
        error = {"code": "destroy_incomplete", "message": f"{len(failed)} of {len(results)} instance(s) were not destroyed: {', '.join(failed)}.",
                 "status": None, "details": {"failed": failed}, "retryable": True,
                 "hint": "See results[].error for each; run the same command again to retry the ones left (those destroyed are gone from the list)."}
        return cli.Output({**data, "ok": False, "error": error}, text, exit_code=1)
    return cli.Output(data, text)


def forget_destroyed(ctx: cli.Context) -> cli.Output:
    """--forget-destroyed: the local leftovers of every instance the API lists as destroyed. Only
    ids the API says are destroyed are touched: one it does not list (another wallet's, or a
    listing that failed) is left alone."""
    rows = [summary(o) for o in ctx.client.list_instances() if isinstance(o, dict)]
    out = []
    for r in rows:
        if r["state"] == "destroyed" and isinstance(r.get("id"), str):
            files = forget_local(ctx, r["id"])
            if files:
                out.append({"id": r["id"], "files": files})
    text = f"forgot the local leftovers of {len(out)} destroyed instance(s)"
    return cli.Output({"count": len(out), "forgotten": out}, text)


# -- get_one_time_password -------------------------------------------------------------

def get_one_time_password(ctx: cli.Context) -> cli.Output:
    iid = instance_id(ctx.args.instance_id)
    saved = ctx.state.credentials_file(iid)

    ensure_dir(saved.parent)  # the password is shown once: make sure it can be stored before asking
    try:
        body = ctx.client.reveal_password(iid)
    except Conflict as e:
        where = f"the file from the first call is at {saved}" if saved.exists() else f"the file from the first call would be at {saved}, if it was made here"
        e.code = "password_already_revealed"
        e.message = f"The one-time password was already revealed; it cannot be shown again: {where}."
        e.hint = "Use the saved file; without it, redeploy the instance, or provision the next one with an SSH key (--ssh-key-file)."
        e.details = {"credentials_file": str(saved) if saved.exists() else None, "server": e.details}
        raise
    access = body.get("access") if isinstance(body.get("access"), dict) else body
    user, password = access.get("username") or "root", access.get("password")
    ip = access.get("ip_address") or access.get("main_ip")
    if not password or not isinstance(password, str):
        raise ComputeError("The API answered without a password.", code="bad_response", details=sorted(access))
    # The password is shown once: save it whatever else in the answer is wrong. The server's user
    # name and address are written escaped (one line each); only checked ones reach the ssh block.
    path = ctx.state.save_credentials(iid, f"username={_one_line(user)}\nip={_one_line(ip)}\npassword={password}\n")
    ctx.progress(f"Saved the one-time password to {path} (mode 0600). It cannot be fetched again.")
    # The reveal answer has no SSH port (the sandbox's machines are not on 22): take the ssh
    # block from the instance itself. The password is already saved, so a failure here is harmless.
    try:
        fields = ssh_fields(ctx.client.get_instance(iid), user=user)
    except ComputeError:
        fields = {"ssh": None, "ssh_unavailable": NO_ADDRESS}
    if fields["ssh"] is None and fields["ssh_unavailable"] == NO_ADDRESS and ip:
        fields = ssh_fields({"ip_address": ip}, user=user)
    ssh = fields["ssh"]
    if ssh:
        ssh = {**{k: v for k, v in ssh.items() if k != "note"}, "auth": "password"}  # the note says to run this script
        ssh = login_block(ctx.state, ssh, iid, with_key=False)
    data = {"instance_id": iid, "username": user, "ip": public_ip({"ip_address": ip}), "credentials_file": str(path), "ssh": ssh,
            "ssh_unavailable": fields["ssh_unavailable"], "password": password if ctx.args.show else None}
    text = f"credentials saved to {path}\nssh: {ssh['command'] if ssh else fields['ssh_unavailable']}" + (f"\npassword: {password}" if ctx.args.show else "")
    return cli.Output(data, text)


def _one_line(value) -> str:
    return "" if value is None else str(value).encode("unicode_escape").decode("ascii")


# -- destroy_instance.py: its parser (the script and the MCP server both build it here) ------

DESTROY_INSTANCE_HELP = """Destroy an instance, or several: every live machine of this wallet (--all) or those whose
label matches a pattern (--label). Irreversible: the disk is deleted and the unused prepaid
time is lost (one summary of it is shown before asking). Needs --yes when not at a terminal.
Prints the instance as it is afterwards (state destroyed, ip null).

--forget-local also drops what this machine keeps about the destroyed instances (host key
pins, keepalive state, saved management keys, passwords and AI Machine keys, owner and key records); alone,
--forget-destroyed does that for every instance the API lists as destroyed."""


def destroy_instance_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "destroy_instance.py",
        DESTROY_INSTANCE_HELP,
        examples="python scripts/destroy_instance.py 3f1c2a9e-0000-4000-8000-000000000001\n"
        "python scripts/destroy_instance.py 3f1c2a9e-0000-4000-8000-000000000001 --yes\n"
        "python scripts/destroy_instance.py --label 'ci-*' --yes --forget-local\n"
        "python scripts/destroy_instance.py --all          # shows what would be lost, then asks\n"
        "python scripts/destroy_instance.py --forget-destroyed",
    )
    p.add_argument("instance_id", nargs="?", help="the instance UUID (from list_instances.py)")
    p.add_argument("--all", action="store_true", help="every live (not destroyed, not expired) instance of this wallet")
    p.add_argument("--label", metavar="PATTERN", help="the live instances whose label matches PATTERN (a shell pattern such as 'ci-*'; without wildcards the exact label)")
    p.add_argument("--forget-local", action="store_true", help="also delete the local leftovers of the instances destroyed (pins, keepalive state, saved keys and passwords; in the state folder only, never through a symlinked subfolder)")
    p.add_argument("--forget-destroyed", action="store_true", help="destroy nothing: delete the local leftovers of every instance the API lists as destroyed")
    cli.add_yes(p, "destroy")
    return p


# -- get_one_time_password.py: its parser (the script and the MCP server both build it here) ------

GET_ONE_TIME_PASSWORD_HELP = """Reveal an instance's one-time root password (Vultr instances created without
an SSH key). The API reveals it exactly once: it is written to a 0600 file in
your state directory and only the file's path is printed (--show to print it).
"""


def get_one_time_password_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "get_one_time_password.py",
        GET_ONE_TIME_PASSWORD_HELP,
        examples="python scripts/get_one_time_password.py 3f1c2a9e-0000-4000-8000-000000000001\npython scripts/get_one_time_password.py 3f1c2a9e-0000-4000-8000-000000000001 --show",
    )
    p.add_argument("instance_id", help="the instance UUID (from list_instances.py)")
    p.add_argument("--show", action="store_true", help="also print the password on stdout")
    return p


# -- instance_details.py: its parser (the script and the MCP server both build it here) ------

INSTANCE_DETAILS_HELP = """Show one instance: normalised state beside the raw provider fields, IP (null
until assigned), expiry, hours left, the prepaid value left, and how to SSH in."""


def instance_details_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "instance_details.py",
        INSTANCE_DETAILS_HELP,
        examples="python scripts/instance_details.py 3f1c2a9e-0000-4000-8000-000000000001",
    )
    p.add_argument("instance_id", help="the instance UUID (from list_instances.py)")
    return p


# -- list_instances.py: its parser (the script and the MCP server both build it here) ------

LIST_INSTANCES_HELP = """List your instances: state, IP, expiry, hours left and how to SSH in (the ssh block,
with -i when the instance was given the skill's own key by provision.py --ssh-key auto)."""


def list_instances_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "list_instances.py",
        LIST_INSTANCES_HELP,
        examples="python scripts/list_instances.py\npython scripts/list_instances.py --state running --label web\npython scripts/list_instances.py --expiring-within 24",
    )
    p.add_argument("--all", action="store_true", help="include destroyed and expired instances")
    p.add_argument("--state", choices=STATES, help="only instances in this normalised state")
    p.add_argument("--label", help="only instances whose label contains this text")
    p.add_argument("--expiring-within", type=float, metavar="HOURS", help="only instances that expire within HOURS (extend them with extend_instance.py)")
    return p


# -- resize_instance.py: its parser (the script and the MCP server both build it here) ------

RESIZE_INSTANCE_HELP = """Resize an instance to another plan (same provider and region). There is
downtime. The prepaid credit is kept and the expiry recomputed for the new
hourly rate. Vultr allows upgrades only; on DigitalOcean a bigger disk is
permanent and needs --confirm-disk-resize. No payment is made.

--quote is the dry run: it runs every check, shows the old and the estimated new
expiry, the credit carried over and the downtime, and sends no resize.

The command line itself is the confirmation (existing users type
`resize_instance.py <id> <plan>` unattended): every refusal the API would
give is checked locally first, and the one irreversible case, DigitalOcean
disk growth, needs its own flag.
"""


def resize_instance_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "resize_instance.py",
        RESIZE_INSTANCE_HELP,
        examples=(
            "python scripts/resize_instance.py 3f1c2a9e-0000-4000-8000-000000000001 vc2-2c-4gb --quote\n"
            "python scripts/resize_instance.py 3f1c2a9e-0000-4000-8000-000000000001 vc2-2c-4gb\n"
            "python scripts/resize_instance.py <instance_id> do:s-2vcpu-4gb --confirm-disk-resize"
        ),
    )
    p.add_argument("instance_id", help="the instance UUID (from list_instances.py)")
    p.add_argument("plan", help="the target plan id (from browse_plans.py)")
    p.add_argument("--quote", action="store_true", help="dry run: checks, old and new expiry, credit carried over, downtime; sends no resize")
    p.add_argument("--confirm-disk-resize", action="store_true", help="allow a permanent disk increase (DigitalOcean)")
    p.add_argument("--yes", "-y", action="store_true", help="accepted for compatibility; resizing needs no other confirmation")
    return p
