//! The production service's wire shapes from a real `envform serve` (timestamps, empty
//! collections, `command_parts`, trailing slashes, the `default` environment, pending statuses),
//! and the reconciler against a control plane that drops fields it is sent.

use serde_json::{Value, json};

use crate::support::{KEY_A, Scenario, Server};

/// One HTTP call with organization A's key; the status and the JSON answer (`null` for none).
fn call(server: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let mut request = client
            .request(method, format!("{}{path}", server.url()))
            .header("Authorization", format!("UserKey {KEY_A}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, value)
    })
}

fn is_production_timestamp(value: &Value) -> bool {
    // 2026-11-28T20:05:22.314074+00:00
    value.as_str().is_some_and(|text| {
        text.len() == 32
            && text.ends_with("+00:00")
            && text.as_bytes()[19] == b'.'
            && text[20..26].bytes().all(|byte| byte.is_ascii_digit())
    })
}

#[test]
fn answers_have_the_production_shapes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    use reqwest::Method;

    let (status, created) = call(
        &server,
        Method::POST,
        "/api/v1/environments",
        Some(json!({"name": "staging"})),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["tags"], json!([]));
    for field in [
        "configuration",
        "metadata",
        "settings",
        "execution_environment",
    ] {
        assert_eq!(created[field], json!({}), "{field}: {created}");
    }
    for field in ["created_at", "updated_at"] {
        assert!(
            is_production_timestamp(&created[field]),
            "{field}: {created}"
        );
    }

    // A trailing slash is the same path.
    let (status, list) = call(&server, Method::GET, "/api/v1/environments/", None);
    assert_eq!(status, 200, "{list}");
    let default = list
        .as_array()
        .expect("a list")
        .iter()
        .find(|environment| environment["name"] == "default")
        .expect("the default environment")
        .clone();
    assert_eq!(default["display_name"], "Default Environment");
    assert_eq!(
        default["description"],
        "Default environment for all workers"
    );
    let id = created["id"].as_str().expect("id");
    let (status, got) = call(
        &server,
        Method::GET,
        &format!("/api/v1/environments/{id}/"),
        None,
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["name"], "staging");

    let (status, command) = call(
        &server,
        Method::GET,
        &format!("/api/v1/environments/{id}/worker-command"),
        None,
    );
    assert_eq!(status, 200, "{command}");
    let token = command["worker_token"].as_str().expect("token");
    // The default command keeps the token off argv: it is an environment variable.
    assert_eq!(
        command["command"],
        format!("ENVFORM_WORKER_TOKEN={token} envform worker start --environment staging")
    );
    assert_eq!(
        command["command_parts"],
        json!({"binary": "envform", "subcommand": "worker start",
               "flags": {"--environment": "staging"}})
    );
    assert_eq!(command["namespace_status"], got["status"]);

    // envform's own CLI reads the answer.
    let output = server
        .envform(dir.path())
        .args(["env", "worker-command", "staging", "-o", "json"])
        .output()
        .expect("run envform");
    assert!(output.status.success(), "{output:?}");
    let shown: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(shown["command_parts"]["flags"]["--environment"], "staging");
    assert!(!String::from_utf8_lossy(&output.stdout).contains(token));
}

#[test]
fn the_production_command_keeps_the_token_among_the_flags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        &dir.path().join("serve.db"),
        &[
            "--worker-command",
            "kubiya worker start --token {token} --environment {environment}",
        ],
    );
    let (_, created) = call(
        &server,
        reqwest::Method::POST,
        "/api/v1/environments",
        Some(json!({"name": "staging"})),
    );
    let id = created["id"].as_str().expect("id");
    let (status, command) = call(
        &server,
        reqwest::Method::GET,
        &format!("/api/v1/environments/{id}/worker-command"),
        None,
    );
    assert_eq!(status, 200, "{command}");
    let token = command["worker_token"].as_str().expect("token");
    assert_eq!(
        command["command_parts"],
        json!({"binary": "kubiya", "subcommand": "worker start",
               "flags": {"--token": token, "--environment": "staging"}})
    );
}

#[test]
fn a_status_asked_for_while_provisioning_is_shown_pending() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The namespace takes long enough to provision that the change lands meanwhile.
    let server = Server::start(&dir.path().join("serve.db"), &["--provision-delay", "30s"]);
    let (status, created) = call(
        &server,
        reqwest::Method::POST,
        "/api/v1/environments",
        Some(json!({"name": "staging"})),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "provisioning", "{created}");
    assert_eq!(created["requested_status"], "active", "{created}");
    let id = created["id"].as_str().expect("id");
    let (status, patched) = call(
        &server,
        reqwest::Method::PATCH,
        &format!("/api/v1/environments/{id}"),
        Some(json!({"status": "inactive"})),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["status"], "provisioning");
    assert_eq!(patched["requested_status"], "inactive");
    // `status_filter` matches `status`: pending, it is listed as provisioning.
    let (_, provisioning) = call(
        &server,
        reqwest::Method::GET,
        "/api/v1/environments?status_filter=provisioning",
        None,
    );
    assert!(
        provisioning
            .as_array()
            .expect("list")
            .iter()
            .any(|environment| environment["id"] == id),
        "{provisioning}"
    );
    let (_, inactive) = call(
        &server,
        reqwest::Method::GET,
        "/api/v1/environments?status_filter=inactive",
        None,
    );
    assert_eq!(inactive, json!([]));
}

#[test]
fn fields_a_control_plane_drops_stop_showing_as_changes() {
    // Creates lose `configuration` and `metadata` on the way in, as on the production service.
    let scenario = Scenario::with(Server::options().args([
        "--faults",
        "drop_fields=configuration+metadata,method=POST,path=/api/v1/environments",
    ]));
    scenario.write(
        "version: 1\nenvironments:\n  - name: app\n    description: the app\n    configuration:\n      max_workers: 3\n    metadata:\n      team: platform\n",
    );
    let output = scenario.apply().output().expect("run apply");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("did not keep `configuration`"),
        "apply says so: {stderr}"
    );
    let state = scenario.state();
    assert_eq!(
        state["unkept_fields"][scenario.server.url()],
        json!(["configuration", "metadata"]),
        "{state}"
    );

    // No perpetual diff: said once, exit 0.
    let plan = scenario
        .plan()
        .arg("--detailed-exitcode")
        .output()
        .expect("run plan");
    assert_eq!(plan.status.code(), Some(0), "{plan:?}");
    // Rendering wraps long lines: compare the words.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&plan.stdout),
        String::from_utf8_lossy(&plan.stderr)
    )
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ");
    assert_eq!(
        said.matches(
            "`configuration` and `metadata` are not kept by this control plane; not managed there"
        )
        .count(),
        1,
        "{said}"
    );

    // Other fields are still managed there.
    scenario.write(
        "version: 1\nenvironments:\n  - name: app\n    description: changed\n    configuration:\n      max_workers: 3\n    metadata:\n      team: platform\n",
    );
    assert_eq!(scenario.plan_exit_code(), 2);
    scenario.apply_ok();
    assert_eq!(scenario.plan_exit_code(), 0);

    // The control plane keeps `configuration` now (updates are not stripped): once it shows a
    // value, envform manages the field again, and the write that keeps it ends the record.
    let id = scenario.live()["app"].clone();
    let (status, _) = call(
        &scenario.server,
        reqwest::Method::PATCH,
        &format!("/api/v1/environments/{id}"),
        Some(json!({"configuration": {"max_workers": 1}})),
    );
    assert_eq!(status, 200);
    assert_eq!(
        scenario.plan_exit_code(),
        2,
        "configuration is managed again"
    );
    scenario.apply_ok();
    let (_, live) = call(
        &scenario.server,
        reqwest::Method::GET,
        &format!("/api/v1/environments/{id}"),
        None,
    );
    assert_eq!(live["configuration"], json!({"max_workers": 3}));
    assert_eq!(
        scenario.state()["unkept_fields"][scenario.server.url()],
        json!(["metadata"])
    );
    let (status, _) = call(
        &scenario.server,
        reqwest::Method::PATCH,
        &format!("/api/v1/environments/{id}"),
        Some(json!({"metadata": {"team": "someone else"}})),
    );
    assert_eq!(status, 200);
    assert_eq!(scenario.plan_exit_code(), 2, "metadata is managed again");
    scenario.apply_ok();
    assert!(
        scenario.state().get("unkept_fields").is_none(),
        "{}",
        scenario.state()
    );
    assert_eq!(scenario.plan_exit_code(), 0);
}
