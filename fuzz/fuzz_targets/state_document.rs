//! The state document reader every backend uses: any bytes are a state or an error, never a
//! panic; a state that is read is checked as a load and a save would check it.
#![no_main]

use envform::state::{self, State};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<State>(data);
    if let Ok(stored) = state::decode_state(data, ".envform/state.json") {
        let _ = serde_json::to_vec_pretty(&stored);
        let _ = State::for_target(Some(stored), "http://127.0.0.1:8000", false);
    }
    // The lock log kept beside a local state.
    let _ = state::check_lock_log(&String::from_utf8_lossy(data));
});
