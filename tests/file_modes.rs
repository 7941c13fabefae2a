//! Files envform creates are its owner's only: the server's database (and its directory), state
//! files and saved plans.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{Scenario, Server, files_below};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn databases_state_files_and_saved_plans_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // The log elsewhere: the server itself creates the database's directory.
    let server = Server::options()
        .log_file(&dir.path().join("server.log"))
        .start(&data.join("serve.db"));
    let scenario_dir = tempfile::tempdir().expect("tempdir");
    let listed = server
        .envform(scenario_dir.path())
        .args(["env", "list"])
        .output()
        .expect("run envform env list");
    assert!(listed.status.success());
    assert_eq!(mode(&data), 0o700, "the database's directory");
    for file in files_below(&data) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    drop(server);

    let scenario = Scenario::new();
    scenario.write("version: 1\nenvironments:\n  - name: api\n");
    scenario.apply_ok();
    let plan = scenario
        .plan()
        .args(["--out", "plan.json"])
        .output()
        .expect("run envform plan --out");
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert_eq!(mode(&scenario.path().join("plan.json")), 0o600);
    let state_dir = scenario.path().join(".envform");
    assert_eq!(mode(&state_dir), 0o700);
    let state_files = files_below(&state_dir);
    assert!(!state_files.is_empty());
    for file in state_files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}
