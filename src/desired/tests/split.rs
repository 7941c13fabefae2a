//! A file composed in pieces is the file composed whole: whenever the split path gives a tree, it
//! is the tree of the whole-file compose, spans included.

use proptest::prelude::*;

use crate::desired::SourceId;
use crate::desired::compose::compose;
use crate::desired::split;

/// Whether the split path took `text`, cut before every item, after checking it agrees with the
/// whole-file compose.
fn agrees(text: &str) -> bool {
    let Some(pieces) = split::compose(SourceId(0), text, 1) else {
        return false;
    };
    match compose(SourceId(0), text) {
        Some(whole) => assert_eq!(pieces, whole, "the trees differ for {text:?}"),
        None => panic!("the split path took {text:?}, the whole-file compose did not"),
    }
    true
}

/// Files the split path takes.
const TAKEN: &[&str] = &[
    "environments:\n  - name: a\n  - name: b\n",
    "version: 1\nenvironments:\n  - name: a\n    status: active\n  - name: b\noptions:\n  prune: true\n",
    "environments: # the fleet\n  - name: a\n\n# the second\n  - name: b\n    # inner\n    tags: [x, y]\n",
    "environments:\r\n  - name: a\r\n  - name: b\r\n",
    "environments:\n    - name: a\n      description: |\n        text\n        - not an item\n    - name: b\n",
    "environments:\n  - name: a\n    description: >-\n      folded\n\n      more\n  - name: b\n",
    "environments:\n  - name: a\n    metadata: {k: v,\n      l: w}\n  - name: b\n",
    "environments:\n  - name: a\n    description: \"two\n      lines\"\n  - b\n  -\n  - [c, d]\n",
    "environments:\n  - name: a\n  - - nested\n    - list\n  - name: é✓\n",
    "environments:\n  - name: a\n  - name: b\n\n\n# trailing comment\n",
    "environments:\n  - name: a\n  - name: b",
    "version: 1\nenvironments:\n  - name: a\n  - name: b\nenvironments:x: 1\n",
];

/// Files the split path leaves to the whole-file compose.
const LEFT: &[&str] = &[
    // Nothing to cut, or one piece.
    "version: 1\n",
    "environments:\n  - name: a\n",
    "environments: []\n",
    "environments: [{name: a}, {name: b}]\n",
    "environments:\n",
    "  environments:\n  - name: a\n  - name: b\n",
    // Items at the key's own indent.
    "environments:\n- name: a\n- name: b\nstate:\n  backend: local\n",
    // The key twice, or under another key.
    "environments:\n  - name: a\n  - name: b\nenvironments:\n  - name: c\n",
    "description: \"\nenvironments:\n  - name: a\n  - name: b\n\"\n",
    // A cut inside a quoted scalar or a flow collection.
    "environments:\n  - name: a\n    description: \"text\n  - name: b\n    \"\n",
    "environments:\n  - name: a\n    tags: [x,\n  - y]\n",
    // A key less indented than the items, after them.
    "environments:\n    - name: a\n    - name: b\n  oops: 1\n",
    // Anchors, aliases and tags are serde-saphyr's.
    "environments:\n  - &a {name: a}\n  - name: b\n",
    "environments:\n  - name: a\n  - !!map {name: b}\n",
    // Parse errors.
    "environments:\n  - name: a\n\t- name: b\n",
    "environments:\n  - name: a\n  - name: b\n---\nenvironments:\n  - c\n",
];

#[test]
fn the_split_path_agrees_on_plain_lists() {
    for text in TAKEN {
        assert!(agrees(text), "the split path left {text:?}");
    }
}

#[test]
fn the_split_path_leaves_what_it_cannot_cut_exactly() {
    for text in LEFT {
        assert!(!agrees(text), "the split path took {text:?}");
    }
}

#[test]
fn the_split_path_agrees_on_every_fixture_and_example() {
    let taken = super::fixture_and_example_texts()
        .iter()
        .filter(|text| agrees(text))
        .count();
    // The fixtures with two items or more: the agreement must not be checked on nothing.
    assert!(taken >= 10, "the split path took only {taken} files");
}

#[test]
fn a_large_fleet_is_cut_in_pieces_of_the_given_size() {
    let mut text = String::from("version: 1\nenvironments:\n");
    for index in 0..4_000 {
        text.push_str(&format!(
            "  - name: env-{index:05}\n    metadata: {{team: t{index}}}\n"
        ));
    }
    let whole = compose(SourceId(0), &text).unwrap();
    assert!(text.len() > 2 * split::PIECE_BYTES);
    let pieces = split::compose(SourceId(0), &text, split::PIECE_BYTES).unwrap();
    assert_eq!(pieces, whole);
    // Too small a file for two pieces of that size is left whole.
    assert!(split::compose(SourceId(0), &text, text.len()).is_none());
}

/// A list of environments written in many ways, with a few characters replaced by ones YAML
/// gives meaning to.
fn mutated_list() -> impl Strategy<Value = String> {
    let text = [
        "version: 1\nenvironments: # all\n",
        "  - name: a\n    description: |\n      block\n      - text\n",
        "  - name: b\n    configuration: {max_workers: 2, timeout_seconds: 60}\n",
        "# between\n  - name: c\n    tags: [x, \"y z\", 'w']\n    metadata:\n      k: v\n",
        "  - name: d\n    description: \"quoted\n      over lines\"\n  - plain\n  -\n",
        "  - name: e\n    depends_on:\n      - a\n      - b\n",
        "options:\n  prune: false\n",
    ]
    .concat();
    let length = text.len();
    let special = prop::sample::select(vec![
        ' ', '\n', ':', '-', '#', '\'', '"', '[', ']', '{', '}', ',', '|', '>', '&', '*', '\t',
    ]);
    prop::collection::vec((0..length, special), 1..4).prop_map(move |edits| {
        let mut bytes = text.clone().into_bytes();
        for (at, replacement) in edits {
            bytes[at % length] = replacement as u8;
        }
        String::from_utf8(bytes).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn the_split_path_agrees_on_mutated_lists(text in mutated_list()) {
        agrees(&text);
    }
}

proptest! {
    // The fixture using every section, edited as the fast path's property edits it.
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_split_path_agrees_on_mutated_files(text in super::compose::mutated_file()) {
        agrees(&text);
    }
}

#[test]
fn the_split_path_takes_most_mutated_lists() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let taken = (0..300)
        .filter(|_| agrees(&mutated_list().new_tree(&mut runner).unwrap().current()))
        .count();
    // Most edits leave a list that can be cut: the property above is not checked on nothing.
    assert!(taken >= 60, "the split path took {taken} of 300");
}
