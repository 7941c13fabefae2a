//! The service's create and update bodies: decoded and validated as `envform serve` does before
//! anything is stored; any bytes give a body or an error answer, never a panic.
#![no_main]

use envform::server::{read_create_body, read_update_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(error) = read_create_body(data) {
        let _ = error.to_body();
        let _ = error.status_code();
    }
    if let Err(error) = read_update_body(data) {
        let _ = error.to_body();
    }
});
