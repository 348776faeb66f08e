"""Provisions a tenant on a running Countersign server through its API.

Creates one principal of every kind (the operator, a person for each tenant
role, a device agent and a webservice credential) and some objects, so that the
contract run finds ids that exist. Writes, per principal, a schemathesis
configuration `OUT_DIR/<principal>.toml` (`schemathesis.toml` beside this file,
plus a login) that logs in with its grant (and logs
in again whenever an answer is 401, e.g. after the run revoked its own token),
the order to test them in to `OUT_DIR/principals`, and what it created to
`OUT_DIR/provisioned.json`.

Usage: provision.py BASE_URL OPERATOR_KEY OUT_DIR
"""

import json
import pathlib
import sys
import urllib.error
import urllib.request
import uuid

BASE, OPERATOR_KEY, OUT_DIR = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])

# People with narrow roles first; the super administrator can end other
# principals' tokens (blocking keys, rotating secrets), and the operator can
# suspend the tenant, so they come last.
ORDER = [
    "system_administrator",
    "approver",
    "cylinder_programmer",
    "receptionist",
    "auditor",
    "webservice",
    "agent",
    "super_administrator",
    "operator",
]


def call(method, path, token=None, body=None, expect=(200, 201, 204)):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode()
    if status not in expect:
        sys.exit(f"{method} {path}: {status} {text}")
    return json.loads(text) if text else None


def login(grant):
    return call("POST", "/v1/auth/token", body=grant)["access_token"]


def main():
    slug = f"contract-{uuid.uuid4().hex[:8]}"
    operator_grant = {"grant_type": "operator", "operator_key": OPERATOR_KEY}
    operator = login(operator_grant)
    created = call(
        "POST",
        "/v1/tenants",
        operator,
        {
            "slug": slug,
            "name": "Contract GmbH",
            "base_timezone": "Europe/Berlin",
            "locale": "en",
            "approval_required": True,
            "approvals_required": 1,
            # The approver made below decides at once.
            "approver_hold_hours": 0,
            "initial_admin": {
                "employee_name": "Ada Admin",
                "email": f"ada@{slug}.example",
                "programming_key_marking": "ADMIN-1",
            },
        },
    )
    tenant_id = created["tenant"]["id"]

    def person_grant(marking, pin):
        return {"grant_type": "programming_key", "tenant": slug, "programming_key": marking, "pin": pin}

    def own_pin(marking, one_time, pin):
        first = login(person_grant(marking, one_time))
        call("POST", "/v1/me/pin", first, {"current_pin": one_time, "new_pin": pin})
        return login(person_grant(marking, pin))

    admin = own_pin("ADMIN-1", created["initial_pin"], "246810")
    grants = {
        "operator": operator_grant,
        "super_administrator": person_grant("ADMIN-1", "246810"),
    }
    tokens = {"operator": operator, "super_administrator": admin}
    ids = {"tenant": tenant_id}

    people = {}
    for role in ["system_administrator", "approver", "cylinder_programmer", "receptionist", "auditor"]:
        marking = role.upper().replace("_", "-")
        employee = call(
            "POST", "/v1/employees", admin, {"name": f"Holder of {marking}", "email": f"{role}@{slug}.example"}
        )
        # Nobody but its holder learns an approver's PIN: the approver role
        # is granted after the holder chose a PIN.
        first_roles = [] if role == "approver" else [role]
        key = call("POST", "/v1/programming-keys", admin, {"marking": marking, "name": marking, "roles": first_roles})
        call("POST", f"/v1/programming-keys/{key['id']}/issue", admin, {"employee_id": employee["id"]})
        call("POST", f"/v1/programming-keys/{key['id']}/pin", admin, {"pin": "1357"})
        tokens[role] = own_pin(marking, "1357", "97531")
        if role == "approver":
            call("PATCH", f"/v1/programming-keys/{key['id']}", admin, {"roles": [role]})
            tokens[role] = login(person_grant(marking, "97531"))
        grants[role] = person_grant(marking, "97531")
        people[role] = key["id"]

    # A device agent serving a wall unit and a desk unit.
    agent = call("POST", "/v1/agents", admin, {"name": "Site agent"})
    remote = call("POST", "/v1/remote-devices", admin, {"name": "Entrance", "kind": "remote_unit", "serial": "RU-1"})
    desk = call("POST", "/v1/remote-devices", admin, {"name": "Office", "kind": "desk_unit", "serial": "DU-1"})
    call("PUT", f"/v1/agents/{agent['agent']['id']}/devices", admin, {"device_ids": [remote["id"], desk["id"]]})
    grants["agent"] = {"grant_type": "agent", "agent_id": agent["agent"]["id"], "secret": agent["secret"]}

    api_key = call("POST", "/v1/api-keys", admin, {"name": "ERP", "roles": ["system_administrator"]})
    grants["webservice"] = {"grant_type": "api_key", "tenant": slug, "api_key": api_key["key"]}

    # Inventory, and requests and jobs in several states.
    system = tokens["system_administrator"]
    group = call("POST", "/v1/key-groups", system, {"name": "Staff", "marking": "G-1"})
    holder = call("POST", "/v1/employees", system, {"name": "Kim Keyholder", "email": f"kim@{slug}.example"})
    keys = []
    for marking, model in [("K-1", "e3"), ("K-2", "e2"), ("K-3", "basic")]:
        key = call(
            "POST",
            "/v1/keys",
            system,
            {"marking": marking, "name": marking, "model": model, "key_group_id": group["id"]},
        )
        call("POST", f"/v1/keys/{key['id']}/issue", system, {"employee_id": holder["id"]})
        keys.append(key["id"])
    cylinder = call("POST", "/v1/cylinders", system, {"marking": "C-1", "name": "Main door", "location": "Hall"})
    pending = call("POST", "/v1/event-log-requests", system, {"target": {"type": "key", "id": keys[0]}})
    approved = call(
        "POST", "/v1/event-log-requests", system, {"target": {"type": "cylinder", "id": cylinder["id"]}}
    )
    call("POST", f"/v1/event-log-requests/{approved['id']}/approve", tokens["approver"], {"comment": "ok"})
    call(
        "POST",
        f"/v1/event-log-requests/{approved['id']}/transfer",
        system,
        {"programming_key_id": people["cylinder_programmer"]},
    )
    desk_job = call("POST", f"/v1/keys/{keys[1]}/desk-readout", system, {"device_id": desk["id"]})
    ids.update(
        {
            "keys": keys,
            "cylinder": cylinder["id"],
            "key_group": group["id"],
            "employee": holder["id"],
            "pending_request": pending["id"],
            "approved_request": approved["id"],
            "desk_job": desk_job.get("id"),
            "agent": agent["agent"]["id"],
            "devices": [remote["id"], desk["id"]],
            "api_key": api_key["api_key"]["id"],
            "programming_keys": people,
        }
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "provisioned.json").write_text(json.dumps({"tenant": slug, "ids": ids}, indent=2))
    shared = (pathlib.Path(__file__).parent / "schemathesis.toml").read_text()
    (OUT_DIR / "anonymous.toml").write_text(shared)
    for principal in ORDER:
        payload = ", ".join(f"{name} = {toml_string(value)}" for name, value in grants[principal].items())
        (OUT_DIR / f"{principal}.toml").write_text(
            shared
            + f"""
[auth.dynamic.openapi.bearer]
path = "/v1/auth/token"
payload = {{ {payload} }}
extract_selector = "/access_token"
"""
        )
    (OUT_DIR / "principals").write_text("\n".join(ORDER) + "\n")


def toml_string(value):
    # A JSON string is a valid TOML basic string.
    return json.dumps(str(value))


if __name__ == "__main__":
    main()
