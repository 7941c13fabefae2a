//! The `options` block: prune, adopt, scope and the safety thresholds.

use super::check::Checker;
use super::diagnostic_kind::Range;
use super::model::{Options, Scope, Threshold};
use super::node::Node;
use super::section::Section;

/// Reads the top-level `options` block.
pub(super) fn read(checker: &mut Checker<'_>, node: &Node) -> Option<Options> {
    let entries = checker.mapping("options", node)?;
    let mut options = Options::default();
    for (key, value) in checker.known_keys(entries, Section::Options) {
        if value.is_null() {
            continue;
        }
        match key {
            "prune" => {
                if let Some(prune) = checker.boolean("options.prune", value) {
                    options.prune = prune;
                }
            }
            "adopt" => {
                if let Some(adopt) = checker.boolean("options.adopt", value) {
                    options.adopt = adopt;
                }
            }
            "scope" => options.scope = scope(checker, value),
            "delete_threshold" => {
                options.delete_threshold = threshold(checker, "options.delete_threshold", value);
            }
            "update_threshold" => {
                options.update_threshold = threshold(checker, "options.update_threshold", value);
            }
            _ => {}
        }
    }
    Some(options)
}

fn scope(checker: &mut Checker<'_>, node: &Node) -> Option<Scope> {
    let entries = checker.mapping("options.scope", node)?;
    let mut scope = Scope::default();
    for (key, value) in checker.known_keys(entries, Section::Scope) {
        match key {
            "name_prefix" => scope.name_prefix = checker.string("options.scope.name_prefix", value),
            "tags" => {
                scope.tags = checker
                    .strings("options.scope.tags", "a list of strings", value)
                    .map(|tags| tags.into_iter().map(|(tag, _)| tag).collect())
                    .unwrap_or_default();
            }
            _ => {}
        }
    }
    Some(scope)
}

fn threshold(checker: &mut Checker<'_>, path: &str, node: &Node) -> Threshold {
    let mut threshold = Threshold::default();
    let Some(entries) = checker.mapping(path, node) else {
        return threshold;
    };
    for (key, value) in checker.known_keys(entries, Section::Threshold) {
        let key_path = format!("{path}.{key}");
        match key {
            "max_fraction" => {
                if let Some(fraction) = checker.fraction(&key_path, value) {
                    threshold.max_fraction = fraction;
                }
            }
            "min_existing" => {
                if let Some(count) = checker.integer(&key_path, value, Range::NonNegative) {
                    threshold.min_existing = usize::try_from(count).unwrap_or(usize::MAX);
                }
            }
            _ => {}
        }
    }
    threshold
}
