//! Exit codes (docs/src/reference/exit-codes.md), one place.

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; for `plan --detailed-exitcode`, no changes.
    Success,
    /// 1: any error (bad input, API failure, a failed step, a usage error).
    Error,
    /// 2: `plan --detailed-exitcode` found changes.
    Changes,
    /// 130: interrupted by Ctrl-C; what had completed is saved.
    Interrupted,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Error => 1,
            Exit::Changes => 2,
            Exit::Interrupted => 130,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}
