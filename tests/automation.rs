//! Running envform from automation: long waits are visible in a CI log, and `apply`, `destroy`
//! and `validate` speak JSON for scripts.

use crate::support::{Scenario, Server};

/// A provisioning delay longer than the interval between still-waiting reports (10 s), as the
/// service's namespace provisioning can be.
const PROVISION_DELAY: &str = "12s";

#[test]
fn a_long_wait_is_reported_every_interval_off_a_terminal() {
    let scenario = Scenario::with(Server::options().args(["--provision-delay", PROVISION_DELAY]));
    scenario.write("version: 1\nenvironments:\n  - name: alpha\n");
    let output = scenario.apply().output().expect("run envform apply");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let created = lines
        .iter()
        .position(|line| *line == "alpha: Creating...")
        .unwrap_or_else(|| panic!("no start line:\n{stderr}"));
    let waiting = lines
        .iter()
        .position(|line| *line == "alpha: Still creating... [10s elapsed] waiting for provisioning")
        .unwrap_or_else(|| panic!("no still-waiting line:\n{stderr}"));
    let done = lines
        .iter()
        .position(|line| line.starts_with("alpha: Created after "))
        .unwrap_or_else(|| panic!("no end line:\n{stderr}"));
    assert!(created < waiting && waiting < done, "{stderr}");
}
