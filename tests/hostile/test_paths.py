"""Class 1: no path from a server value, and no folder touched that the client did not create.

An id the server chose becomes a file name (credentials/<id>.txt, instance-keys/<id>.key, the
owners file's keys) or a URL segment only once it is a UUID: ``State`` checks it at the one
place ids become file names, and the client checks ids as they arrive in a listing or a detail.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import pytest
from x402_compute import errors
from x402_compute.state import State

from tests.helpers import run_script
from tests.hostile.stub import json_reply

TRAVERSALS = ["../../../outside", "/tmp/abs-outside", "..", "a/b", "3f1c2a9e-0000-4000-8000-000000000001/../../x",
              "3f1c2a9e-0000-4000-8000-000000000001\n", "", None, 42, {"id": "x"}]


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("bad", TRAVERSALS, ids=repr)
def test_state_accepts_only_uuids_as_file_names(tmp_path, bad):
    st = State(tmp_path / "state")
    for call in (lambda: st.save_instance_key(bad, "x402c_k"), lambda: st.save_credentials(bad, "pw"),
                 lambda: st.remember_owner(bad, "base", "0xabc"), lambda: st.instance_key(bad), lambda: st.owner(bad)):
        with pytest.raises(errors.ComputeError) as e:
            call()
        assert e.value.code == "bad_response" and "not a UUID" in e.value.message
    assert files_under(tmp_path) <= {"state"}  # nothing written, anywhere


def test_state_path_parts_are_plain_names(tmp_path):
    st = State(tmp_path)
    for part in ("..", "a/b", "/etc", "", "x\0y"):
        with pytest.raises(errors.ComputeError):
            st.path("credentials", part)


def test_a_non_uuid_id_in_a_listing_is_a_bad_response(hostile, hostile_env, tmp_path):
    hostile.add_order()
    hostile.add_order(id="../../../../tmp/owned")
    code, doc, _ = run_script("list_instances.py", env=hostile_env())
    assert code == 1 and doc["error"]["code"] == "bad_response"
    assert doc["error"]["details"]["field"] == "instances[1].id" and "owned" in doc["error"]["details"]["received"]


def test_details_answering_for_another_id_is_a_bad_response(hostile, hostile_env):
    order = hostile.add_order()
    hostile.override("GET", f"/compute/instances/{order['id']}", lambda req, honest: json_reply(200, {"order": {**order, "id": "../../x"}}))
    code, doc, _ = run_script("instance_details.py", order["id"], env=hostile_env())
    assert code == 1 and doc["error"]["code"] == "bad_response" and doc["error"]["details"]["field"] == "order.id"
    other = str(uuid.uuid4())
    hostile.override("GET", f"/compute/instances/{order['id']}", lambda req, honest: json_reply(200, {"order": {**order, "id": other}}))
    code, doc, _ = run_script("instance_details.py", order["id"], env=hostile_env())
    assert code == 1 and doc["error"]["code"] == "bad_response" and other in doc["error"]["message"]


def test_a_non_uuid_id_in_a_paid_answer_is_never_a_path(hostile, hostile_env, tmp_path):
    """The paid 2xx names its order "../../../outside": nothing is written under that name."""
    def evil(req, honest):
        body = honest().body
        body["order"]["id"] = "../../../outside"
        return json_reply(201, body)

    hostile.override("POST", "/compute/provision", evil, when="paid")
    before = files_under(tmp_path)
    code, doc, _ = run_script("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes", env=hostile_env())
    assert code != 0 and doc["error"]["code"] == "bad_response", doc
    assert len(hostile.signatures()) == 1
    state = tmp_path / "home" / "state"
    created = files_under(tmp_path) - before
    assert all(p.startswith("home/state") for p in created), created
    assert not any("outside" in p for p in created)
    owners = state / "instance-owners.json"
    assert not owners.exists() or "outside" not in owners.read_text()


def test_password_file_uses_the_users_id_and_escapes_server_text(hostile, hostile_env, tmp_path):
    order = hostile.add_order(access_method="one_time_password_fallback")
    hostile.override("POST", f"/compute/instances/{order['id']}/password", json_reply(
        200, {"success": True, "access": {"username": "root\npassword=evil", "ip_address": "1.2.3.4\nx=y", "password": "Pw-1"}}))
    code, doc, _ = run_script("get_one_time_password.py", order["id"], env=hostile_env())
    assert code == 0, doc
    path = Path(doc["credentials_file"])
    assert path == tmp_path / "home" / "state" / "credentials" / f"{order['id']}.txt"
    lines = path.read_text().splitlines()
    assert lines == ["username=root\\npassword=evil", "ip=1.2.3.4\\nx=y", "password=Pw-1"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # the server's user name is not a user name: no ssh block built from it
    assert doc["ssh"] is None and "user name" in doc["ssh_unavailable"]


# -- folders ----------------------------------------------------------------------------------------

def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _password_run(hostile, hostile_env, state_dir: Path):
    order = hostile.add_order(access_method="one_time_password_fallback")
    return order, run_script("get_one_time_password.py", order["id"], env=hostile_env(X402_COMPUTE_STATE_DIR=str(state_dir)))


def test_a_shared_sticky_parent_is_left_alone_and_the_new_root_is_0700(hostile, hostile_env, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    _, (code, doc, _) = _password_run(hostile, hostile_env, shared / "x402" / "state")
    assert code == 0, doc
    assert _mode(shared) == 0o1777
    for d in (shared / "x402", shared / "x402" / "state", shared / "x402" / "state" / "credentials"):
        assert _mode(d) == 0o700, d


def test_a_world_writable_parent_is_refused_before_the_one_time_reveal(hostile, hostile_env, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # no sticky bit: anyone could swap our folder for theirs
    order, (code, doc, _) = _password_run(hostile, hostile_env, shared / "state")
    assert code == 2 and doc["error"]["code"] == "unsafe_state_dir", doc
    assert _mode(shared) == 0o777 and list(shared.iterdir()) == []
    assert not hostile.received("POST", r".*/password")  # the password was not spent


def test_an_existing_loose_root_is_not_chmodded_and_doctor_warns(hostile, hostile_env, tmp_path):
    root = tmp_path / "mystate"
    root.mkdir()
    os.chmod(root, 0o755)
    _, (code, doc, _) = _password_run(hostile, hostile_env, root)
    assert code == 0, doc
    assert _mode(root) == 0o755 and _mode(root / "credentials") == 0o700
    code, doc, _ = run_script("doctor.py", "--offline", env=hostile_env(X402_COMPUTE_STATE_DIR=str(root)))
    check = {c["name"]: c for c in doc["checks"]}["state_dir"]
    assert check["status"] == "warn" and "never changes the mode" in check["detail"] and _mode(root) == 0o755


def test_a_root_others_can_write_is_refused_and_doctor_fails(hostile, hostile_env, tmp_path):
    root = tmp_path / "mystate"
    root.mkdir()
    os.chmod(root, 0o777)
    _, (code, doc, _) = _password_run(hostile, hostile_env, root)
    assert code == 2 and doc["error"]["code"] == "unsafe_state_dir"
    assert _mode(root) == 0o777 and list(root.iterdir()) == []
    code, doc, _ = run_script("doctor.py", "--offline", env=hostile_env(X402_COMPUTE_STATE_DIR=str(root)))
    assert code == 1 and {c["name"]: c["status"] for c in doc["checks"]}["state_dir"] == "fail"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to hand a folder to another user")
def test_a_root_owned_by_another_user_is_refused(hostile, hostile_env, tmp_path):
    root = tmp_path / "theirs"
    root.mkdir(mode=0o700)
    os.chown(root, 12345, 12345)
    _, (code, doc, _) = _password_run(hostile, hostile_env, root)
    assert code == 2 and doc["error"]["code"] == "unsafe_state_dir" and "another user" in doc["error"]["message"]
    assert list(root.iterdir()) == []


def test_journal_and_pins_stay_in_the_state_root(hostile, hostile_env, tmp_path):
    code, doc, _ = run_script("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes", env=hostile_env())
    assert code == 0, doc
    state = tmp_path / "home" / "state"
    assert _mode(state) == 0o700 and _mode(state / "ledger.sqlite3") == 0o600
    owners = json.loads((state / "instance-owners.json").read_text())
    assert list(owners) == [doc["order"]["id"]]


def test_forget_local_never_deletes_through_a_symlinked_folder(hostile, hostile_env, tmp_path):
    """destroy_instance.py --forget-local deletes the pin, password and keepalive files of the machine
    in their own folders: a state subfolder that is a symlink to elsewhere is not followed (its files
    outside stay, and stderr says what was left), and a file that is itself a symlink is unlinked, its
    target untouched. The key folders and the real folders are cleaned as before."""
    order = hostile.add_order()
    iid = order["id"]
    state = tmp_path / "home" / "state"
    state.mkdir(mode=0o700)
    outside = tmp_path / "outside"
    victims = {}
    # (keepalive/<id>.json is left out: the ledger's one-time import of an earlier release's records
    # renames any keepalive/*.json to .imported before destroy runs; the .lock shows the folder rule.)
    for folder, name in (("known_hosts", iid), ("keepalive", f"{iid}.lock")):
        target = outside / folder
        target.mkdir(parents=True, exist_ok=True)
        (target / name).write_text("not the client's\n")
        victims[target / name] = "not the client's\n"
        if not (state / folder).is_symlink():
            (state / folder).symlink_to(target)
    (state / "credentials").mkdir(mode=0o700)
    linked = outside / "secret.txt"
    linked.write_text("a file the link points at\n")
    victims[linked] = "a file the link points at\n"
    (state / "credentials" / f"{iid}.txt").symlink_to(linked)
    (state / "ai-keys").mkdir(mode=0o700)
    (state / "ai-keys" / f"{iid}.key").write_text("sk-abcdefgh\n")

    rc, doc, err = run_script("destroy_instance.py", iid, "--yes", "--forget-local", env=hostile_env())
    assert rc == 0 and doc["destroyed"] is True, (doc, err)
    assert all(p.read_text() == text for p, text in victims.items())  # nothing outside the state folder deleted
    assert sorted(doc["forgotten"]) == sorted([str(state / "credentials" / f"{iid}.txt"), str(state / "ai-keys" / f"{iid}.key")])
    assert not (state / "credentials" / f"{iid}.txt").is_symlink() and not (state / "ai-keys" / f"{iid}.key").exists()
    assert f"{state / 'known_hosts'} is not a plain folder" in err and f"{state / 'keepalive'} is not a plain folder" in err


def test_remove_file_is_one_name_in_one_real_folder(tmp_path):
    st = State(tmp_path / "state")
    st.save_credentials("3f1c2a9e-0000-4000-8000-000000000001", "pw")
    assert st.remove_file("credentials", "3f1c2a9e-0000-4000-8000-000000000001.txt") == st.credentials_file("3f1c2a9e-0000-4000-8000-000000000001")
    assert st.remove_file("credentials", "3f1c2a9e-0000-4000-8000-000000000001.txt") is None  # already gone
    assert st.remove_file("keepalive", "x.json") is None  # no such folder
    (tmp_path / "state" / "credentials" / "d").mkdir()
    assert st.remove_file("credentials", "d") is None and (tmp_path / "state" / "credentials" / "d").is_dir()
    for folder, name in (("..", "x"), ("credentials", "../x"), ("a/b", "x")):
        with pytest.raises(errors.ComputeError) as e:
            st.remove_file(folder, name)
        assert e.value.code == "bad_response"
