"""The production SDK's requests, made with the standard library only, against `envform serve`.

Sends what that SDK sends (`Authorization: UserKey <key>`, `Content-Type: application/json` on
every request, GET and DELETE included, its User-Agent, no trailing slashes) and runs the
examples of the Environments Service's documentation end to end. Reads its answers as that SDK's
users do (`datetime.fromisoformat`, `for tag in env["tags"]`). Prints one JSON object: the
answers, for the golden files of tests/production_client.rs. Exits non-zero on the first
mismatch.

Usage: production_client.py BASE_URL API_KEY
"""

import json
import sys
import urllib.error
import urllib.request
from datetime import datetime

BASE, KEY = sys.argv[1], sys.argv[2]
HEADERS = {
    "Authorization": f"UserKey {KEY}",
    "Content-Type": "application/json",
    "User-Agent": "kubiya-control-plane@2.1.6",
}
ANSWERS = {}


def call(method, path, body=None, name=None):
    """One request as the SDK makes it; returns (status, parsed JSON or None)."""
    assert not path.endswith("/"), path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method, headers=HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    value = json.loads(text) if text else None
    if name is not None:
        ANSWERS[name] = {"status": status, "body": value}
    return status, value


def check(condition, message):
    if not condition:
        sys.stderr.write(f"production_client.py: {message}\n")
        sys.exit(1)


def check_environment(env):
    # Python 3.10's fromisoformat cannot read `Z`: the service writes `+00:00`.
    for field in ("created_at", "updated_at"):
        datetime.fromisoformat(env[field])
    for tag in env["tags"]:
        check(isinstance(tag, str), f"tag {tag!r}")
    for field in ("settings", "configuration", "metadata", "execution_environment"):
        check(isinstance(env[field], dict), f"{field} is {env[field]!r}")


# List all environments: the organization starts with its default one.
status, environments = call("GET", "/api/v1/environments", name="list_initial")
check(status == 200, f"list: {status}")
default = [env for env in environments if env["name"] == "default"]
check(len(default) == 1, f"default: {environments}")
check(default[0]["display_name"] == "Default Environment", default[0])
check(default[0]["description"] == "Default environment for all workers", default[0])
for env in environments:
    check_environment(env)

# List with each status filter of the documentation.
for status_filter in ("active", "provisioning", "ready", "error", "inactive"):
    status, listed = call("GET", f"/api/v1/environments?status_filter={status_filter}")
    check(status == 200, f"status_filter={status_filter}: {status}")
    check(all(env["status"] == status_filter for env in listed), listed)

# Create a new environment (the documentation's Staging example).
env_data = {
    "name": "Staging",
    "description": "Staging environment for testing",
    "status": "active",
    "configuration": {"max_workers": 10, "timeout_seconds": 3600},
    "metadata": {"team": "platform", "cost_center": "engineering"},
}
status, environment = call("POST", "/api/v1/environments", env_data, name="create")
check(status == 201, f"create: {status} {environment}")
check_environment(environment)
check(environment["configuration"] == env_data["configuration"], environment)
check(environment["metadata"] == env_data["metadata"], environment)

# Get a specific environment.
env_id = environment["id"]
status, got = call("GET", f"/api/v1/environments/{env_id}", name="get")
check(status == 200 and got["name"] == "Staging", got)
check(got.get("temporal_namespace", "N/A") is not None, got)

# Update: name and description, then configuration, then status.
status, updated = call(
    "PATCH",
    f"/api/v1/environments/{env_id}",
    {"name": "Production-US-East", "description": "US East production environment"},
    name="patch",
)
check(status == 200 and updated["name"] == "Production-US-East", updated)
status, updated = call(
    "PATCH",
    f"/api/v1/environments/{env_id}",
    {"configuration": {"max_workers": 20, "timeout_seconds": 7200}},
)
check(updated["configuration"] == {"max_workers": 20, "timeout_seconds": 7200}, updated)
status, updated = call("PATCH", f"/api/v1/environments/{env_id}", {"status": "inactive"})
check(status == 200 and updated["status"] == "inactive", updated)

# Worker registration command.
status, worker_info = call(
    "GET", f"/api/v1/environments/{env_id}/worker-command", name="worker_command"
)
check(status == 200, f"worker-command: {status}")
for field in ("command", "worker_token", "temporal_namespace", "environment_name"):
    check(field in worker_info, f"worker-command lacks {field}")
check(worker_info["worker_token"] in worker_info["command"], "the token is in the command")
parts = worker_info["command_parts"]
check(set(parts) == {"binary", "subcommand", "flags"}, parts)
check(parts["flags"]["--environment"] == "Production-US-East", parts)

# The complete example: one environment per stage, their commands, the list, their status.
created = []
for stage, workers in (("Development", 5), ("Staging", 10), ("Production", 20)):
    status, env = call(
        "POST",
        "/api/v1/environments",
        {
            "name": stage,
            "description": f"{stage} environment",
            "configuration": {"max_workers": workers, "timeout_seconds": 1800},
            "metadata": {"stage": stage.lower()},
        },
    )
    check(status == 201, f"create {stage}: {status} {env}")
    created.append(env)
for env in created:
    status, info = call("GET", f"/api/v1/environments/{env['id']}/worker-command")
    check(status == 200 and info["environment_name"] == env["name"], info)
status, all_envs = call("GET", "/api/v1/environments")
check(len(all_envs) == 5, f"{len(all_envs)} environments")
for env in created:
    status, current = call("GET", f"/api/v1/environments/{env['id']}")
    check(current["status"] in ("active", "ready", "provisioning"), current)

# Errors, each shape: not found (string), invalid (list of fields), unauthorized (object),
# conflict (string), the default environment kept (string).
call("GET", "/api/v1/environments/invalid-id", name="error_not_found")
call("POST", "/api/v1/environments", {"name": "x", "nmae": 1}, name="error_invalid")
call("POST", "/api/v1/environments", {"name": "Staging"}, name="error_conflict")
call("DELETE", f"/api/v1/environments/{default[0]['id']}", name="error_default")
saved = HEADERS["Authorization"]
HEADERS["Authorization"] = "UserKey not-a-key"
call("GET", "/api/v1/environments", name="error_unauthorized")
HEADERS["Authorization"] = saved
check(ANSWERS["error_not_found"]["status"] == 404, ANSWERS["error_not_found"])
check(ANSWERS["error_invalid"]["status"] == 422, ANSWERS["error_invalid"])
check(ANSWERS["error_conflict"]["status"] == 409, ANSWERS["error_conflict"])
check(ANSWERS["error_default"]["status"] == 400, ANSWERS["error_default"])
check(ANSWERS["error_unauthorized"]["status"] == 401, ANSWERS["error_unauthorized"])

# Delete: 204, no content; then it is gone.
status, body = call("DELETE", f"/api/v1/environments/{env_id}", name="delete")
check(status == 204 and body is None, f"delete: {status} {body}")
status, _ = call("GET", f"/api/v1/environments/{env_id}")
check(status == 404, f"after delete: {status}")

print(json.dumps(ANSWERS, indent=2, sort_keys=True))
