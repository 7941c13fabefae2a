//! The fast path and serde-saphyr agree: whenever `compose` gives a tree, it is the tree
//! serde-saphyr's deserializer gives, spans included.

use proptest::prelude::*;

use crate::desired::SourceId;
use crate::desired::compose::compose;
use crate::desired::node::deserialize;

/// Whether the fast path took `text`, after checking it agrees with serde-saphyr.
fn agrees(text: &str) -> bool {
    let Some(fast) = compose(SourceId(0), text) else {
        return false;
    };
    match deserialize(SourceId(0), text) {
        Ok(full) => assert_eq!(fast, full, "the trees differ for {text:?}"),
        Err(problem) => panic!("the fast path took {text:?}, serde-saphyr refused it: {problem:?}"),
    }
    true
}

/// Texts the fast path takes.
const TAKEN: &[&str] = &[
    "version: 1\n",
    "key:\n",
    "a: ~\nb: null\nc: Null\nd: NULL\ne:\n",
    "a: true\nb: True\nc: TRUE\nd: false\ne: False\nf: FALSE\n",
    "a: yes\nb: on\nc: no\nd: off\ne: y\n",
    "a: 0\nb: -0\nc: 7\nd: -12\ne: 123456789012345678\nf: -123456789012345678\n",
    "a: 1.5\nb: -0.25\nc: 0.0\nd: 01.5\ne: 10.000000000000000001\n",
    "a: .envform/state.json\nb: ./relative\nc: -foo/bar\nd: 1.0.0-beta\ne: 0.5s\n",
    "a: 10Gi\nb: 12:30\nd: 0xZZ\ne: -x y\nf: 2024-01-01T10:00:00Z\n",
    "a: inf\nb: nan\nc: infinity\nd: e5\n",
    "a: 'single'\nb: \"double\\n\\u00e9\"\nc: '007'\nd: \"12\"\ne: ''\nf: \"null\"\n",
    "lit: |\n  line one\n  line two\nfold: >\n  folded\n  text\nkeep: |+\n  kept\n\nstrip: |-\n  stripped\n",
    "{a: 1, b: [x, y], c: {d: e}}\n",
    "[a, {b: c}, [d], [], {}]\n",
    "a: [ ]\nb: { }\n",
    "- - - x\n  - y\n- z\n",
    "a:\n  - b\n  -\n  - c: d\n    e: f\n",
    "  a: 1\n  b: 2\n",
    "---\na: 1\n...\n",
    "---\n",
    "# a comment\na: 1 # trailing\n# closing\n",
    "key with spaces: value with:colon # and a comment\n",
    "a: multi\n  line plain\n  scalar\n",
    "'quoted key': v\n\"\": empty key\n",
    "é: ünïcode ✓\n",
    "\u{feff}a: 1\n",
    "a:\r\n  b: c\r\n",
    "a: b\na: c\n",
    "metadata: {team: payments, shard: \"001\"}\n",
    "just a scalar\n",
    "- 1\n- two\n- ~\n",
];

/// Texts left to serde-saphyr.
const LEFT: &[&str] = &[
    "",
    "# only a comment\n",
    "a: &x 1\nb: *x\n",
    "base: &b {a: 1}\nc:\n  <<: *b\n",
    "<<: {a: 1}\n",
    "a: !!str 1\n",
    "a: !custom x\n",
    "? [complex]\n: value\n",
    "a: b\n---\nc: d\n",
    "a: 1e3\n",
    "a: .inf\n",
    "a: 0x1f\n",
    "a: 007\n",
    "a: +5\n",
    "a: 1_000\n",
    "a: 12345678901234567890\n",
    "a: [unclosed\n",
    "a: 'unclosed\n",
    "a:\n\t- tab\n",
    "a: 2024-01-01\n",
    "a: -x\n",
    "a: -.inf\n",
    "a: -inf\n",
    "a: .NaN\n",
    "a: 1E3\n",
    "a: .5\n",
    "a: 5.\n",
    "a: 1.5e3\n",
    "a: 1.2.3\n",
];

#[test]
fn the_fast_path_agrees_on_plain_yaml() {
    for text in TAKEN {
        assert!(agrees(text), "the fast path left {text:?} to serde-saphyr");
    }
}

#[test]
fn the_fast_path_leaves_the_rest_to_serde_saphyr() {
    for text in LEFT {
        assert!(!agrees(text), "the fast path took {text:?}");
    }
}

#[test]
fn the_fast_path_agrees_on_every_fixture_and_example() {
    let taken = super::fixture_and_example_texts()
        .iter()
        .filter(|text| agrees(text))
        .count();
    // The examples and most fixtures are plain YAML: the fast path must not quietly stop.
    assert!(taken >= 40, "the fast path took only {taken} files");
}

/// A random YAML text built from plain, quoted and block pieces in block and flow layouts.
fn yaml_text() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        "[a-zA-Z0-9 _.:+~#-]{0,8}",
        "[a-z0-9]{0,4}".prop_map(|text| format!("'{text}'")),
        "[a-z0-9 \\\\\"]{0,5}".prop_map(|text| format!("\"{text}\"")),
        Just("-0".to_owned()),
        Just("null".to_owned()),
        Just("True".to_owned()),
    ];
    let leaf = scalar.prop_map(|text| (text, false));
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                let parts: Vec<String> = items.into_iter().map(|(text, _)| text).collect();
                (format!("[{}]", parts.join(", ")), false)
            }),
            prop::collection::vec(("[a-z]{1,3}", inner.clone()), 0..4).prop_map(|entries| {
                let parts: Vec<String> = entries
                    .into_iter()
                    .map(|(key, (value, _))| format!("{key}: {value}"))
                    .collect();
                (format!("{{{}}}", parts.join(", ")), false)
            }),
            prop::collection::vec(("[a-z]{1,3}", inner), 1..4).prop_map(|entries| {
                let lines: Vec<String> = entries
                    .into_iter()
                    .map(|(key, (value, block))| {
                        if block {
                            format!("{key}:\n{}", indent(&value))
                        } else {
                            format!("{key}: {value}")
                        }
                    })
                    .collect();
                (lines.join("\n"), true)
            }),
        ]
    })
    .prop_map(|(text, _)| format!("{text}\n"))
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_fast_path_agrees_on_random_yaml(text in yaml_text()) {
        agrees(&text);
    }
}

/// A plain file using every section, with a few characters replaced by ones YAML gives meaning to.
pub(super) fn mutated_file() -> impl Strategy<Value = String> {
    let text = std::fs::read_to_string("tests/fixtures/spec/good/full.yaml").unwrap();
    let length = text.len();
    let special = prop::sample::select(vec![
        ' ', '\n', ':', '-', '#', '\'', '"', '[', ']', '{', '}', ',', '?', '|', '>', '0', '.', '~',
        '\t', 'é',
    ]);
    prop::collection::vec((0..length, special), 1..4).prop_map(move |edits| {
        let mut characters: Vec<char> = text.chars().collect();
        for (at, replacement) in edits {
            let at = at % characters.len();
            characters[at] = replacement;
        }
        characters.into_iter().collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_fast_path_agrees_on_mutated_files(text in mutated_file()) {
        agrees(&text);
    }
}

#[test]
fn the_fast_path_takes_most_mutated_files() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let taken = (0..200)
        .filter(|_| agrees(&mutated_file().new_tree(&mut runner).unwrap().current()))
        .count();
    // Most edits leave plain YAML: the property above is not checked on nothing.
    assert!(taken >= 50, "the fast path took {taken} of 200");
}
