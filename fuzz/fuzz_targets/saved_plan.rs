//! The saved-plan reader (`envform apply plan.json`): any text is a plan or an error, never a
//! panic; a plan that is read is written back and read again.
#![no_main]

use envform::plan::{Plan, SavedPlan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Plan::from_saved(&text);
    if let Ok(saved) = SavedPlan::from_text(&text)
        && let Ok(written) = saved.to_text()
    {
        let _ = SavedPlan::from_text(&written);
    }
});
