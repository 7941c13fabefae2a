//! Environment names: the rules the service applies to them and the one name every organization
//! keeps. The desired-file checker and the service both read these, so a file that validates is a
//! file the service accepts.

/// The name of the environment every organization keeps; it is never deleted.
pub const DEFAULT_ENVIRONMENT: &str = "default";

/// Fewest characters in a name.
pub const NAME_MIN_CHARS: usize = 2;

/// Most characters in a name.
pub const NAME_MAX_CHARS: usize = 100;

/// Why a name would be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// Fewer than [`NAME_MIN_CHARS`] characters.
    TooShort,
    /// More than [`NAME_MAX_CHARS`] characters.
    TooLong,
    /// Starts or ends with whitespace.
    OuterWhitespace,
    /// Holds a control character (newline, tab, …).
    ControlCharacter,
}

impl NameProblem {
    /// Why the service would refuse `name`, if it would.
    pub fn of(name: &str) -> Option<Self> {
        let count = name.chars().count();
        if count < NAME_MIN_CHARS {
            Some(Self::TooShort)
        } else if count > NAME_MAX_CHARS {
            Some(Self::TooLong)
        } else if name.chars().any(char::is_control) {
            Some(Self::ControlCharacter)
        } else if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
            Some(Self::OuterWhitespace)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_service_rules() {
        assert_eq!(NameProblem::of("production"), None);
        assert_eq!(NameProblem::of("New Environment"), None);
        assert_eq!(NameProblem::of("test-{timestamp}"), None);
        assert_eq!(NameProblem::of(DEFAULT_ENVIRONMENT), None);
        assert_eq!(NameProblem::of("a"), Some(NameProblem::TooShort));
        assert_eq!(NameProblem::of("é"), Some(NameProblem::TooShort));
        assert_eq!(NameProblem::of(&"x".repeat(100)), None);
        assert_eq!(
            NameProblem::of(&"x".repeat(101)),
            Some(NameProblem::TooLong)
        );
        assert_eq!(NameProblem::of(" prod"), Some(NameProblem::OuterWhitespace));
        assert_eq!(
            NameProblem::of("prod\n"),
            Some(NameProblem::ControlCharacter)
        );
        assert_eq!(
            NameProblem::of("pr\u{7}od"),
            Some(NameProblem::ControlCharacter)
        );
    }
}
