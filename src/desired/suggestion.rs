//! "Did you mean": the closest candidate within a Levenshtein distance of 2, as casey/just does.

/// Largest distance still offered as a suggestion.
const MAX_DISTANCE: usize = 2;

/// The candidate closest to `written`, if any is within [`MAX_DISTANCE`] edits; ties go to the
/// earliest candidate so suggestions are stable.
pub(crate) fn closest<'a, I>(written: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == written {
            continue;
        }
        let distance = strsim::levenshtein(written, candidate);
        if distance <= MAX_DISTANCE
            && best.is_none_or(|(best_distance, _)| distance < best_distance)
        {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_within_two_edits() {
        let keys = ["description", "display_name", "status"];
        assert_eq!(closest("descripton", keys), Some("description"));
        assert_eq!(closest("stats", keys), Some("status"));
        assert_eq!(closest("owner", keys), None);
    }

    #[test]
    fn ties_go_to_the_first_candidate() {
        assert_eq!(closest("ab", ["ax", "ay"]), Some("ax"));
    }
}
