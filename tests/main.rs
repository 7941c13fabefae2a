//! envform's integration tests: one binary (link time on 2 cores), driving the real `envform`
//! executable against a real `envform serve` on 127.0.0.1 with temporary SQLite files.

mod architecture;
mod automation;
mod bad_input;
mod cli_env;
mod client_retry;
mod connections;
mod contract;
mod fault_matrix;
mod file_modes;
mod fuzz;
mod http_state;
mod isolation;
mod load;
mod migrate;
mod openapi;
mod ownership;
mod postgres;
mod production_client;
mod races;
mod readme;
mod reconcile;
mod replicas;
mod review;
mod roles;
mod secrets;
mod storage_faults;
mod support;
mod temporal;
mod tls;
mod wire;
mod worker_tokens;
mod workers;
mod workflow;
