//! The desired-file parser: any text, one file, must give a model or diagnostics, never a panic;
//! a diagnostic must also render against its source.
#![no_main]

use envform::desired::{self, SourceFile, Sources};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let sources = Sources {
        files: vec![SourceFile {
            path: "environments.yaml".into(),
            text,
        }],
    };
    if let Err(error) = desired::parse(sources) {
        // Rendering walks the labels' spans into the source text.
        let _ = format!("{:?}", miette::Report::new(error));
    }
});
