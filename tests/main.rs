//! envform's integration tests: one binary (link time on 2 cores), driving the real `envform`
//! executable against a real `envform serve` on 127.0.0.1 with temporary SQLite files.

mod cli_env;
mod client_retry;
mod contract;
mod http_state;
mod readme;
mod reconcile;
mod support;
mod workflow;
mod secrets;
mod bad_input;
mod races;
mod fuzz;
mod load;
mod fault_matrix;
