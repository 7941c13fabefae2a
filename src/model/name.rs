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
    /// Holds an invisible formatting character (zero-width space, a bidirectional override, …),
    /// which would make two names look alike or reorder what a terminal shows.
    InvisibleCharacter,
}

/// Whether `character` is an invisible formatting character: zero-width characters, the
/// bidirectional marks, embeddings, overrides and isolates, and the byte-order mark.
pub fn is_invisible(character: char) -> bool {
    matches!(
        character,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}' | '\u{00AD}'
    )
}

/// Why a free-text value (a display name, a lock's owner, a hostname) would be refused: the
/// name rules without the length bounds.
pub fn text_problem(text: &str) -> Option<NameProblem> {
    if text.chars().any(char::is_control) {
        Some(NameProblem::ControlCharacter)
    } else if text.chars().any(is_invisible) {
        Some(NameProblem::InvisibleCharacter)
    } else if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        Some(NameProblem::OuterWhitespace)
    } else {
        None
    }
}

impl NameProblem {
    /// Why the service would refuse `name`, if it would.
    pub fn of(name: &str) -> Option<Self> {
        let count = name.chars().count();
        if count < NAME_MIN_CHARS {
            Some(Self::TooShort)
        } else if count > NAME_MAX_CHARS {
            Some(Self::TooLong)
        } else {
            text_problem(name)
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
        for invisible in [
            "pro\u{200B}d",
            "prod\u{202E}",
            "\u{FEFF}prod",
            "pr\u{2066}od",
        ] {
            assert_eq!(
                NameProblem::of(invisible),
                Some(NameProblem::InvisibleCharacter),
                "{invisible:?}"
            );
        }
        assert_eq!(text_problem("Production (EU)"), None);
        assert_eq!(text_problem("x"), None);
        assert_eq!(
            text_problem("eve\n2026 INFO"),
            Some(NameProblem::ControlCharacter)
        );
    }
}
