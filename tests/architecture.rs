//! The architecture stays as designed: the layering rules between the top-level modules of
//! `src/` hold, and no file of `src/` takes part in a circle of imports.
//!
//! The core (`desired`, `plan`) is only pure and reusable while it never reaches for the service,
//! the store or the command line, and the domain types of `model` only stay a leaf while they
//! import nothing else; file-level import circles are where refactors get stuck. Nothing enforces
//! either at compile time inside one crate, so these tests read the source text (std only, no
//! compiler): comments and literals are blanked, `use` trees expanded, `crate::`/`super::`/`self::`
//! paths resolved to files (seeing through `pub use` re-exports), and every violation is reported
//! with its file, line and path. Test code (`tests/` directories, `tests.rs`, `#[cfg(test)]`
//! items) is exempt.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

/// In a rule's forbidden list: every top-level module except the rule's own.
const ANY_OTHER_MODULE: &str = "*";

/// The layering rules: (module, the top-level modules it never imports).
const RULES: &[(&str, &[&str])] = &[
    // The core, `desired` and `plan`, never reaches for the service or the command line.
    ("desired", &["server", "control_plane", "store", "cli"]),
    ("plan", &["server", "control_plane", "store", "cli"]),
    ("desired", &["api", "state"]),
    ("api", &["plan"]),
    ("state", &["api", "desired"]),
    ("control_plane", &["server", "cli", "temporal"]),
    // Temporal sits at the edge, behind the control plane's provisioner trait.
    ("temporal", &["server", "cli", "store"]),
    ("store", &["server", "cli"]),
    ("apply", &["desired"]),
    // Reading a Terraform state is pure and needs only the domain types.
    (
        "terraform",
        &[
            "api",
            "apply",
            "cli",
            "control_plane",
            "desired",
            "plan",
            "server",
            "state",
            "store",
            "target",
        ],
    ),
    // The domain types are a leaf: they import no other module of the crate.
    ("model", &[ANY_OTHER_MODULE]),
];

/// How deep re-exports are followed before giving up (guards against `pub use` loops).
const MAX_REEXPORT_DEPTH: usize = 16;

/// No module imports one that the RULES table forbids it.
#[test]
fn layering_rules_hold() {
    let krate = Crate::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        krate.reference_count() > 0,
        "the architecture check found no `crate::`/`super::`/`self::` paths in src/: its parser is broken"
    );
    let violations = krate.layering_violations();
    let mut report = String::new();
    for violation in &violations {
        writeln!(report, "  {violation}").expect("writing to a String");
    }
    assert!(
        violations.is_empty(),
        "{} layering violation(s) (file:line: module -> forbidden module: path); \
         the rules are the RULES table in tests/architecture.rs:\n{report}",
        violations.len()
    );
}

/// No files of src/ import each other in a circle.
#[test]
fn no_import_cycles_between_files() {
    let krate = Crate::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let cycles = krate.cycles();
    assert!(
        cycles.is_empty(),
        "{} import cycle(s) between files of src/ (each a strongly connected component, with the \
         imports inside it):\n{}",
        cycles.len(),
        render_cycles(&krate, &cycles)
    );
}

/// One lexical token of stripped source: a word (identifier, keyword, number), `::`, or one
/// punctuation character.
#[derive(Clone, Debug, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

impl Token {
    /// Whether the token is an identifier, keyword or number.
    fn is_word(&self) -> bool {
        self.text.chars().next().is_some_and(is_ident_char)
    }
}

/// Whether `c` can be part of an identifier.
fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// One name brought in by a `use` declaration, its tree expanded.
#[derive(Clone, Debug, PartialEq)]
struct UseEntry {
    /// The full path, e.g. `["crate", "plan", "Plan"]`; a trailing `self` is dropped.
    segments: Vec<String>,
    /// The name it binds (its `as` rename or last segment); `None` for a glob (`::*`).
    binding: Option<String>,
    /// `pub`, `pub(crate)`, `pub(super)`, … — a re-export.
    public: bool,
    line: usize,
}

/// What one source file imports and defines, test code excluded.
#[derive(Debug, Default)]
struct Parsed {
    uses: Vec<UseEntry>,
    /// `crate::`, `super::` and `self::` paths outside `use` declarations, with their line.
    inline: Vec<(Vec<String>, usize)>,
    /// Names of the items the file defines (`struct`, `fn`, `mod`, …).
    defined: BTreeSet<String>,
}

/// A path to somewhere in the crate, as written in one file.
struct Reference<'a> {
    segments: &'a [String],
    glob: bool,
    public_use: bool,
    line: usize,
}

impl Reference<'_> {
    /// The path as it reads in the source, e.g. `crate::api::Status::Active`.
    fn display(&self) -> String {
        let mut text = self.segments.join("::");
        if self.glob {
            text.push_str("::*");
        }
        text
    }
}

/// `source` with comments and the contents of string and char literals blanked to spaces;
/// newlines are kept so line numbers stay right.
fn strip_comments_and_literals(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let at = |index: usize| chars.get(index).copied();
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let after_ident = i > 0 && is_ident_char(chars[i - 1]);
        if c == '/' && at(i + 1) == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == Some('*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == Some('/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if let Some((hashes, quote)) = raw_string_start(&chars, i).filter(|_| !after_ident) {
            // r"…", r#"…"#, br"…", cr"…": no escapes, ends at `"` followed by the same hashes.
            let mut end = quote + 1;
            while end < chars.len()
                && !(chars[end] == '"' && (1..=hashes).all(|k| at(end + k) == Some('#')))
            {
                end += 1;
            }
            let end = (end + 1 + hashes).min(chars.len());
            for &skipped in &chars[i..end] {
                blank(&mut out, skipped);
            }
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() {
                match chars[i] {
                    '\\' => {
                        blank(&mut out, '\\');
                        if let Some(escaped) = at(i + 1) {
                            blank(&mut out, escaped);
                        }
                        i += 2;
                    }
                    '"' => {
                        out.push(' ');
                        i += 1;
                        break;
                    }
                    other => {
                        blank(&mut out, other);
                        i += 1;
                    }
                }
            }
        } else if c == '\'' && at(i + 1) == Some('\\') {
            // An escaped char literal: '\'' '\n' '\u{1F600}'.
            let mut end = i + 3;
            while end < chars.len() && chars[end] != '\'' && chars[end] != '\n' {
                end += 1;
            }
            let end = (end + 1).min(chars.len());
            for &skipped in &chars[i..end] {
                blank(&mut out, skipped);
            }
            i = end;
        } else if c == '\'' && at(i + 2) == Some('\'') {
            // A plain char literal such as '"' or '{'.
            out.push_str("   ");
            i += 3;
        } else {
            // Anything else, lifetimes ('a) included.
            out.push(c);
            i += 1;
        }
    }
    out
}

/// When a raw string literal starts at `start`: its number of `#`s and the index of its `"`.
fn raw_string_start(chars: &[char], start: usize) -> Option<(usize, usize)> {
    let mut i = start;
    if matches!(chars.get(i), Some('b' | 'c')) {
        i += 1;
    }
    if chars.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
    (chars.get(i + hashes) == Some(&'"')).then_some((hashes, i + hashes))
}

/// The tokens of stripped source text.
fn tokenize(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if is_ident_char(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            tokens.push(Token {
                text: chars[start..i].iter().collect(),
                line,
            });
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push(Token {
                text: "::".to_owned(),
                line,
            });
            i += 2;
        } else {
            tokens.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    tokens
}

/// The index just past the bracket that closes the one opening at `open` (or the end).
fn matching_close(tokens: &[Token], open: usize) -> usize {
    let (opening, closing) = match tokens[open].text.as_str() {
        "(" => ("(", ")"),
        "[" => ("[", "]"),
        _ => ("{", "}"),
    };
    let mut depth = 0usize;
    for (index, token) in tokens.iter().enumerate().skip(open) {
        if token.text == opening {
            depth += 1;
        } else if token.text == closing {
            depth -= 1;
            if depth == 0 {
                return index + 1;
            }
        }
    }
    tokens.len()
}

/// When a `#[cfg(test)]`-like attribute starts at `start`: the index past it, and whether it is
/// an inner attribute (`#![cfg(test)]`, the whole rest of the file is test code).
fn test_attribute(tokens: &[Token], start: usize) -> Option<(usize, bool)> {
    let text = |index: usize| tokens.get(index).map(|token| token.text.as_str());
    if text(start) != Some("#") {
        return None;
    }
    let inner = text(start + 1) == Some("!");
    let open = if inner { start + 2 } else { start + 1 };
    if text(open) != Some("[") || text(open + 1) != Some("cfg") || text(open + 2) != Some("(") {
        return None;
    }
    let end = matching_close(tokens, open);
    let predicate = &tokens[open + 3..end.saturating_sub(2).max(open + 3)];
    let first = predicate.first().map(|token| token.text.as_str());
    let positive_test = predicate.iter().enumerate().any(|(index, token)| {
        token.text == "test"
            && !(index >= 2
                && predicate[index - 1].text == "("
                && predicate[index - 2].text == "not")
    });
    (positive_test && matches!(first, Some("test" | "all"))).then_some((end, inner))
}

/// The index just past the item, field, arm or statement starting at `start`.
fn item_end(tokens: &[Token], start: usize) -> usize {
    let mut i = start;
    // Further attributes of the same item.
    while tokens.get(i).is_some_and(|token| token.text == "#") {
        let open = if tokens.get(i + 1).is_some_and(|token| token.text == "!") {
            i + 2
        } else {
            i + 1
        };
        if tokens.get(open).is_none_or(|token| token.text != "[") {
            break;
        }
        i = matching_close(tokens, open);
    }
    let is_use = tokens[i.min(tokens.len())..]
        .iter()
        .take_while(|token| token.text != ";" && token.text != "{")
        .any(|token| token.text == "use");
    let mut angle = 0usize;
    while i < tokens.len() {
        let previous = i.checked_sub(1).map(|index| tokens[index].text.as_str());
        match tokens[i].text.as_str() {
            ";" => return i + 1,
            "," if angle == 0 && !is_use => return i + 1,
            "}" => return i,
            "(" | "[" => i = matching_close(tokens, i),
            "{" if is_use => i = matching_close(tokens, i),
            "{" => return matching_close(tokens, i),
            "<" => {
                angle += 1;
                i += 1;
            }
            ">" if !matches!(previous, Some("-" | "=")) => {
                angle = angle.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    tokens.len()
}

/// `tokens` without the items gated by `#[cfg(test)]` (or `#[cfg(all(test, …))]`).
fn drop_test_code(tokens: &[Token]) -> Vec<Token> {
    let mut kept = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if let Some((end, inner)) = test_attribute(tokens, i) {
            if inner {
                break;
            }
            i = item_end(tokens, end);
        } else {
            kept.push(tokens[i].clone());
            i += 1;
        }
    }
    kept
}

/// Expands one use tree (`a::{b, c::{self, D as E}}`, `a::*`) onto `prefix`, from `*pos`.
fn expand_use_tree(tokens: &[Token], pos: &mut usize, prefix: &[String], out: &mut Vec<UseEntry>) {
    let mut path = prefix.to_vec();
    while let Some(token) = tokens.get(*pos) {
        match token.text.as_str() {
            "::" => *pos += 1,
            "*" => {
                *pos += 1;
                out.push(UseEntry {
                    segments: path,
                    binding: None,
                    public: false,
                    line: token.line,
                });
                return;
            }
            "{" => {
                *pos += 1;
                while let Some(inner) = tokens.get(*pos) {
                    match inner.text.as_str() {
                        "}" => {
                            *pos += 1;
                            return;
                        }
                        "," => *pos += 1,
                        _ => {
                            let before = *pos;
                            expand_use_tree(tokens, pos, &path, out);
                            if *pos == before {
                                *pos += 1;
                            }
                        }
                    }
                }
                return;
            }
            _ if token.is_word() => {
                *pos += 1;
                path.push(token.text.clone());
                if tokens.get(*pos).is_some_and(|next| next.text == "::") {
                    continue;
                }
                let mut binding = None;
                if tokens.get(*pos).is_some_and(|next| next.text == "as") {
                    binding = tokens.get(*pos + 1).map(|alias| alias.text.clone());
                    *pos += 2;
                }
                if path.last().is_some_and(|last| last == "self") {
                    path.pop();
                }
                let binding = binding.or_else(|| path.last().cloned());
                out.push(UseEntry {
                    segments: path,
                    binding,
                    public: false,
                    line: token.line,
                });
                return;
            }
            _ => return,
        }
    }
}

/// Whether the `use` at `index` is a re-export: `pub use`, `pub(crate) use`, `pub(in …) use`.
fn is_public_use(tokens: &[Token], index: usize) -> bool {
    let Some(previous) = index.checked_sub(1).map(|previous| &tokens[previous]) else {
        return false;
    };
    if previous.text == "pub" {
        return true;
    }
    if previous.text != ")" {
        return false;
    }
    let mut depth = 0usize;
    for back in (0..index).rev() {
        match tokens[back].text.as_str() {
            ")" => depth += 1,
            "(" => {
                depth -= 1;
                if depth == 0 {
                    return back > 0 && tokens[back - 1].text == "pub";
                }
            }
            _ => {}
        }
    }
    false
}

/// Parses one source file: its imports, inline crate paths and defined names, test code excluded.
fn parse(source: &str) -> Parsed {
    let tokens = drop_test_code(&tokenize(&strip_comments_and_literals(source)));
    let text = |index: usize| tokens.get(index).map(|token| token.text.as_str());
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < tokens.len() {
        let word = tokens[i].text.as_str();
        if word == "use" && text(i + 1) != Some("<") {
            let public = is_public_use(&tokens, i);
            let end = (i..tokens.len())
                .find(|&index| tokens[index].text == ";")
                .unwrap_or(tokens.len());
            let mut entries = Vec::new();
            let mut pos = 0;
            expand_use_tree(&tokens[i + 1..end], &mut pos, &[], &mut entries);
            parsed.uses.extend(
                entries
                    .into_iter()
                    .map(|entry| UseEntry { public, ..entry }),
            );
            i = end + 1;
        } else if matches!(word, "crate" | "super" | "self")
            && text(i + 1) == Some("::")
            && !matches!(i.checked_sub(1).and_then(text), Some("::" | "$"))
            && !(i >= 3
                && text(i - 1) == Some("in")
                && text(i - 2) == Some("(")
                && text(i - 3) == Some("pub"))
        {
            let line = tokens[i].line;
            let mut segments = vec![word.to_owned()];
            i += 1;
            while text(i) == Some("::") && tokens.get(i + 1).is_some_and(Token::is_word) {
                segments.push(tokens[i + 1].text.clone());
                i += 2;
            }
            parsed.inline.push((segments, line));
        } else {
            let defines = matches!(
                word,
                "struct" | "enum" | "union" | "trait" | "type" | "fn" | "const" | "static" | "mod"
            ) || (word == "macro_rules" && text(i + 1) == Some("!"));
            let name_at = if word == "macro_rules" { i + 2 } else { i + 1 };
            if defines && tokens.get(name_at).is_some_and(Token::is_word) {
                parsed.defined.insert(tokens[name_at].text.clone());
            }
            i += 1;
        }
    }
    parsed
}

/// One file of `src/`, parsed.
struct SourceFile {
    /// The path from the crate root, e.g. `src/plan/diff.rs`.
    path: String,
    /// Its module path from the crate root, e.g. `["plan", "diff"]`; empty for `lib.rs`.
    module: Vec<String>,
    /// Wholly test code: under a `tests/` directory, or a `tests.rs`.
    is_test: bool,
    /// `lib.rs`, a `mod.rs`, or a file with child module files: its `pub use`s are re-exports.
    is_module_root: bool,
    parsed: Parsed,
}

impl SourceFile {
    /// Every `crate::`, `super::` and `self::` path the file writes, in `use` trees or inline.
    fn references(&self) -> impl Iterator<Item = Reference<'_>> {
        let relative = |segments: &[String]| {
            segments
                .first()
                .is_some_and(|first| matches!(first.as_str(), "crate" | "super" | "self"))
        };
        let uses = self
            .parsed
            .uses
            .iter()
            .filter(move |entry| relative(&entry.segments))
            .map(|entry| Reference {
                segments: &entry.segments,
                glob: entry.binding.is_none(),
                public_use: entry.public,
                line: entry.line,
            });
        let inline = self.parsed.inline.iter().map(|(segments, line)| Reference {
            segments,
            glob: false,
            public_use: false,
            line: *line,
        });
        uses.chain(inline)
    }
}

/// A layering rule broken at one place.
struct Violation {
    path: String,
    line: usize,
    module: String,
    imported: String,
    written: String,
}

impl std::fmt::Display for Violation {
    /// `file:line: module -> imported module: path as written`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} -> {}: {}",
            self.path, self.line, self.module, self.imported, self.written
        )
    }
}

/// An import of one file by another.
#[derive(Clone)]
struct Edge {
    from: usize,
    to: usize,
    line: usize,
    written: String,
}

/// The source files of the crate and its module tree.
struct Crate {
    files: Vec<SourceFile>,
    modules: HashMap<Vec<String>, usize>,
}

impl Crate {
    /// Reads every `.rs` file under `src` (the crate's `src/` directory).
    fn load(src: &Path) -> Crate {
        let mut sources = Vec::new();
        let mut directories = vec![src.to_path_buf()];
        while let Some(directory) = directories.pop() {
            let entries = std::fs::read_dir(&directory).unwrap_or_else(|error| {
                panic!("reading directory {}: {error}", directory.display())
            });
            for entry in entries {
                let path = entry
                    .unwrap_or_else(|error| {
                        panic!("listing directory {}: {error}", directory.display())
                    })
                    .path();
                if path.is_dir() {
                    directories.push(path);
                } else if path.extension().is_some_and(|extension| extension == "rs") {
                    let source = std::fs::read_to_string(&path)
                        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
                    let relative = path.strip_prefix(src).expect("a file found under src/");
                    let components: Vec<String> = relative
                        .components()
                        .map(|component| component.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    sources.push((format!("src/{}", components.join("/")), source));
                }
            }
        }
        Crate::from_sources(sources)
    }

    /// Builds the crate from `(path from the crate root, source)` pairs such as
    /// `("src/plan/diff.rs", "…")`. `src/main.rs`, the binary's own crate, is left out.
    fn from_sources(sources: Vec<(String, String)>) -> Crate {
        let mut files: Vec<SourceFile> = sources
            .into_iter()
            .filter_map(|(path, source)| {
                let inside = path.strip_prefix("src/")?.strip_suffix(".rs")?;
                let mut module: Vec<String> = inside.split('/').map(str::to_owned).collect();
                if module == ["main"] {
                    return None;
                }
                let file_name = module.last().cloned().unwrap_or_default();
                let is_test = file_name == "tests"
                    || module[..module.len() - 1]
                        .iter()
                        .any(|part| part == "tests");
                if module == ["lib"] || file_name == "mod" {
                    module.pop();
                }
                let parsed = parse(&source);
                Some(SourceFile {
                    path,
                    module,
                    is_test,
                    is_module_root: false,
                    parsed,
                })
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let modules: HashMap<Vec<String>, usize> = files
            .iter()
            .enumerate()
            .map(|(index, file)| (file.module.clone(), index))
            .collect();
        for file in &mut files {
            file.is_module_root = file.module.is_empty()
                || file.path.ends_with("/mod.rs")
                || modules.keys().any(|module| {
                    module.len() > file.module.len() && module.starts_with(&file.module)
                });
        }
        Crate { files, modules }
    }

    /// How many crate paths the non-test code writes (a parser sanity check).
    fn reference_count(&self) -> usize {
        self.files
            .iter()
            .filter(|file| !file.is_test)
            .map(|file| file.references().count())
            .sum()
    }

    /// `segments`, written in the file `from`, as a module path from the crate root. Paths
    /// starting with a child module's name resolve only when `bare` (re-exports of a module root);
    /// external crates give `None`.
    fn absolute(&self, from: usize, segments: &[String], bare: bool) -> Option<Vec<String>> {
        let module = &self.files[from].module;
        let first = segments.first()?;
        match first.as_str() {
            "crate" => Some(segments[1..].to_vec()),
            "self" => Some(module.iter().chain(&segments[1..]).cloned().collect()),
            "super" => {
                let mut ancestor = module.clone();
                let supers = segments
                    .iter()
                    .take_while(|segment| *segment == "super")
                    .count();
                for _ in 0..supers {
                    ancestor.pop()?;
                }
                ancestor.extend_from_slice(&segments[supers..]);
                Some(ancestor)
            }
            _ if bare => {
                let mut child = module.clone();
                child.push(first.clone());
                self.modules
                    .contains_key(&child)
                    .then(|| module.iter().chain(segments).cloned().collect())
            }
            _ => None,
        }
    }

    /// Whether the file `index` defines or imports `name`.
    fn provides(&self, index: usize, name: &str) -> bool {
        let parsed = &self.files[index].parsed;
        parsed.defined.contains(name)
            || parsed
                .uses
                .iter()
                .any(|entry| entry.binding.as_deref() == Some(name))
    }

    /// The file that defines what the absolute path `path` names: the deepest module file on it,
    /// followed through the `use` (re-export) that brings its next name in, recursively.
    fn resolve(&self, path: &[String], depth: usize) -> Option<usize> {
        let (file, split) = (0..=path.len()).rev().find_map(|length| {
            self.modules
                .get(&path[..length])
                .map(|&file| (file, length))
        })?;
        let rest = &path[split..];
        let Some(name) = rest.first() else {
            return Some(file);
        };
        if depth >= MAX_REEXPORT_DEPTH || self.files[file].parsed.defined.contains(name) {
            return Some(file);
        }
        let uses = &self.files[file].parsed.uses;
        for entry in uses
            .iter()
            .filter(|entry| entry.binding.as_deref() == Some(name.as_str()))
        {
            if let Some(mut target) = self.absolute(file, &entry.segments, true) {
                target.extend_from_slice(&rest[1..]);
                if target != path {
                    return self.resolve(&target, depth + 1).or(Some(file));
                }
            }
        }
        for entry in uses.iter().filter(|entry| entry.binding.is_none()) {
            let Some(module) = self.absolute(file, &entry.segments, true) else {
                continue;
            };
            let Some(&glob_file) = self.modules.get(&module) else {
                continue;
            };
            if glob_file != file && self.provides(glob_file, name) {
                let target: Vec<String> = module.into_iter().chain(rest.iter().cloned()).collect();
                return self.resolve(&target, depth + 1).or(Some(file));
            }
        }
        Some(file)
    }

    /// Every place where non-test code breaks a rule of [`RULES`].
    fn layering_violations(&self) -> Vec<Violation> {
        let top_level: BTreeSet<&str> = self
            .modules
            .keys()
            .filter(|module| module.len() == 1)
            .map(|module| module[0].as_str())
            .collect();
        let mut violations = Vec::new();
        for (index, file) in self.files.iter().enumerate() {
            let Some(own) = file.module.first().filter(|_| !file.is_test) else {
                continue;
            };
            let forbidden: Vec<&str> = RULES
                .iter()
                .filter(|(module, _)| module == own)
                .flat_map(|(_, forbidden)| forbidden.iter().copied())
                .collect();
            if forbidden.is_empty() {
                continue;
            }
            for reference in file.references() {
                let Some(path) = self.absolute(index, reference.segments, false) else {
                    continue;
                };
                let Some(first) = path.first() else { continue };
                let imported = if top_level.contains(first.as_str()) {
                    first.clone()
                } else {
                    // A name the crate root defines or re-exports (`crate::run`): where it lives.
                    match self
                        .resolve(&path, 0)
                        .and_then(|target| self.files[target].module.first())
                    {
                        Some(module) => module.clone(),
                        None => "crate root".to_owned(),
                    }
                };
                let breaks = imported != *own
                    && forbidden
                        .iter()
                        .any(|&module| module == imported || module == ANY_OTHER_MODULE);
                if breaks {
                    violations.push(Violation {
                        path: file.path.clone(),
                        line: reference.line,
                        module: own.clone(),
                        imported,
                        written: reference.display(),
                    });
                }
            }
        }
        violations.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        violations
    }

    /// The imports between files of non-test code. A module root's own `pub use`s are not
    /// imports (they are seen through), and a file importing itself is left out.
    fn edges(&self) -> Vec<Edge> {
        let mut edges = Vec::new();
        for (index, file) in self
            .files
            .iter()
            .enumerate()
            .filter(|(_, file)| !file.is_test)
        {
            for reference in file.references() {
                if reference.public_use && file.is_module_root {
                    continue;
                }
                let Some(path) = self.absolute(index, reference.segments, false) else {
                    continue;
                };
                let Some(target) = self.resolve(&path, 0) else {
                    continue;
                };
                if target != index {
                    edges.push(Edge {
                        from: index,
                        to: target,
                        line: reference.line,
                        written: reference.display(),
                    });
                }
            }
        }
        edges
    }

    /// The strongly connected components of more than one file of the import graph (Tarjan),
    /// each as sorted file indices.
    fn cycles(&self) -> Vec<Vec<usize>> {
        let mut successors: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); self.files.len()];
        for edge in self.edges() {
            successors[edge.from].insert(edge.to);
        }
        let mut tarjan = Tarjan {
            successors: &successors,
            index: vec![None; successors.len()],
            low: vec![0; successors.len()],
            on_stack: vec![false; successors.len()],
            stack: Vec::new(),
            next: 0,
            components: Vec::new(),
        };
        for node in 0..successors.len() {
            if tarjan.index[node].is_none() {
                tarjan.visit(node);
            }
        }
        let mut cycles: Vec<Vec<usize>> = tarjan
            .components
            .into_iter()
            .filter(|component| component.len() > 1)
            .collect();
        for cycle in &mut cycles {
            cycle.sort_unstable();
        }
        cycles.sort();
        cycles
    }
}

/// Tarjan's strongly connected components over file indices.
struct Tarjan<'a> {
    successors: &'a [BTreeSet<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    /// Visits `node` and everything reachable from it not yet visited.
    fn visit(&mut self, node: usize) {
        self.index[node] = Some(self.next);
        self.low[node] = self.next;
        self.next += 1;
        self.stack.push(node);
        self.on_stack[node] = true;
        for &successor in &self.successors[node] {
            match self.index[successor] {
                None => {
                    self.visit(successor);
                    self.low[node] = self.low[node].min(self.low[successor]);
                }
                Some(index) if self.on_stack[successor] => {
                    self.low[node] = self.low[node].min(index);
                }
                Some(_) => {}
            }
        }
        if Some(self.low[node]) == self.index[node] {
            let mut component = Vec::new();
            while let Some(member) = self.stack.pop() {
                self.on_stack[member] = false;
                component.push(member);
                if member == node {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

/// Each cycle's files, then the imports between them (first place each pair occurs).
fn render_cycles(krate: &Crate, cycles: &[Vec<usize>]) -> String {
    let edges = krate.edges();
    let mut report = String::new();
    for (number, cycle) in cycles.iter().enumerate() {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&file| krate.files[file].path.as_str())
            .collect();
        writeln!(report, "  cycle {}: {}", number + 1, names.join(", "))
            .expect("writing to a String");
        let mut first_import: BTreeMap<(&str, &str), &Edge> = BTreeMap::new();
        for edge in edges
            .iter()
            .filter(|edge| cycle.contains(&edge.from) && cycle.contains(&edge.to))
        {
            first_import
                .entry((
                    krate.files[edge.from].path.as_str(),
                    krate.files[edge.to].path.as_str(),
                ))
                .or_insert(edge);
        }
        for ((from, to), edge) in first_import {
            writeln!(
                report,
                "    {from}:{} -> {to} ({})",
                edge.line, edge.written
            )
            .expect("writing to a String");
        }
    }
    report
}

/// The checker's own parsing and resolution, on small inline sources.
mod checker {
    use super::*;

    /// The crate made of `files`, `(path, source)`.
    fn crate_of(files: &[(&str, &str)]) -> Crate {
        Crate::from_sources(
            files
                .iter()
                .map(|(path, source)| (path.to_string(), source.to_string()))
                .collect(),
        )
    }

    /// `(path, binding, public)` of each use entry of `source`.
    fn uses(source: &str) -> Vec<(String, Option<String>, bool)> {
        parse(source)
            .uses
            .into_iter()
            .map(|entry| (entry.segments.join("::"), entry.binding, entry.public))
            .collect()
    }

    /// The imports of `krate` as `from -> to` pairs of paths.
    fn edge_pairs(krate: &Crate) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = krate
            .edges()
            .into_iter()
            .map(|edge| {
                (
                    krate.files[edge.from].path.clone(),
                    krate.files[edge.to].path.clone(),
                )
            })
            .collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }

    /// An owned `(from, to)` pair.
    fn pair(from: &str, to: &str) -> (String, String) {
        (from.to_owned(), to.to_owned())
    }

    /// A multi-line grouped `use` expands to one entry per name, on the name's own line.
    #[test]
    fn grouped_multi_line_use_expands_with_renames_self_and_globs() {
        let source = "pub(crate) use crate::{\n    api::Environment,\n    plan::{self, Plan as P, render::*},\n};\nuse super::x;";
        assert_eq!(
            uses(source),
            vec![
                (
                    "crate::api::Environment".to_owned(),
                    Some("Environment".to_owned()),
                    true
                ),
                ("crate::plan".to_owned(), Some("plan".to_owned()), true),
                ("crate::plan::Plan".to_owned(), Some("P".to_owned()), true),
                ("crate::plan::render".to_owned(), None, true),
                ("super::x".to_owned(), Some("x".to_owned()), false),
            ]
        );
        let lines: Vec<usize> = parse(source).uses.iter().map(|entry| entry.line).collect();
        assert_eq!(lines, [2, 3, 3, 3, 5]);
    }

    /// Paths in comments, literals and `#[cfg(test)]` items are not imports; the rest still is.
    #[test]
    fn comments_literals_and_test_code_are_not_scanned() {
        let source = r##"
// use crate::server::A;
/* crate::server::B /* nested */ crate::server::C */
const S: &str = "crate::server::D \" crate::server::E";
const R: &str = r#"crate::server::F "quoted" "#;
const Q: char = '"';
fn f<'a>(x: &'a str) -> &'a str { let _ = crate::store::Real; x }
#[cfg(test)]
mod tests;
#[cfg(test)]
mod inline_tests { use crate::server::G; }
#[cfg(all(test, unix))]
use crate::server::H;
#[cfg(not(test))]
use crate::cli::Kept;
struct Fields { #[cfg(test)] probe: crate::server::I, kept: crate::api::J }
"##;
        let parsed = parse(source);
        let inline: Vec<(String, usize)> = parsed
            .inline
            .iter()
            .map(|(segments, line)| (segments.join("::"), *line))
            .collect();
        assert_eq!(
            inline,
            [
                ("crate::store::Real".to_owned(), 7),
                ("crate::api::J".to_owned(), 16)
            ]
        );
        assert_eq!(
            uses(source),
            [(
                "crate::cli::Kept".to_owned(),
                Some("Kept".to_owned()),
                false
            )]
        );
        assert!(parsed.defined.contains("Fields") && parsed.defined.contains("f"));
    }

    /// Inline paths end at generics; `pub(in crate::…)` and `$crate::` are not imports.
    #[test]
    fn inline_paths_stop_at_generics_and_skip_visibility_and_macros() {
        let source = "pub(in crate::plan) fn f() { for _ in crate::list() {} crate::api::Status::Active; crate::a::B::<T>::new(); $crate::m::x; super::super::y::z(); }";
        let inline: Vec<String> = parse(source)
            .inline
            .iter()
            .map(|(segments, _)| segments.join("::"))
            .collect();
        assert_eq!(
            inline,
            [
                "crate::list",
                "crate::api::Status::Active",
                "crate::a::B",
                "super::super::y::z"
            ]
        );
    }

    /// `super::` and `self::` resolve from the file's own module path to the deepest file.
    #[test]
    fn super_and_self_resolve_against_the_files_module() {
        let krate = crate_of(&[
            ("src/lib.rs", "pub mod plan;"),
            (
                "src/plan/mod.rs",
                "mod diff; mod model; pub struct Options;",
            ),
            (
                "src/plan/diff.rs",
                "use super::model::Plan; use super::Options; fn f() { self::g(); }",
            ),
            ("src/plan/model.rs", "pub struct Plan;"),
            ("src/plan/render/mod.rs", "mod human;"),
            ("src/plan/render/human.rs", "use super::super::diff::run;"),
        ]);
        assert_eq!(
            edge_pairs(&krate),
            [
                pair("src/plan/diff.rs", "src/plan/mod.rs"),
                pair("src/plan/diff.rs", "src/plan/model.rs"),
                pair("src/plan/render/human.rs", "src/plan/diff.rs"),
            ]
        );
    }

    /// Named, renamed and glob re-exports lead to the file that defines the item.
    #[test]
    fn re_exports_are_followed_to_the_defining_file() {
        let krate = crate_of(&[
            (
                "src/lib.rs",
                "pub mod api; pub mod plan; pub mod apply; pub use apply::run;",
            ),
            (
                "src/plan/mod.rs",
                "mod model; mod base; pub use model::{Plan, Step as PlanStep}; pub use base::*;",
            ),
            ("src/plan/model.rs", "pub struct Plan; pub struct Step;"),
            ("src/plan/base.rs", "pub struct Base;"),
            (
                "src/api/mod.rs",
                "mod types; pub(crate) use self::types::Status;",
            ),
            ("src/api/types.rs", "pub enum Status { Active }"),
            (
                "src/apply/mod.rs",
                "use crate::plan::{Plan, PlanStep, Base}; pub fn run() { let _ = crate::api::Status::Active; }",
            ),
            ("src/cli.rs", "fn f() { crate::run(); }"),
        ]);
        assert_eq!(
            edge_pairs(&krate),
            [
                pair("src/apply/mod.rs", "src/api/types.rs"),
                pair("src/apply/mod.rs", "src/plan/base.rs"),
                pair("src/apply/mod.rs", "src/plan/model.rs"),
                pair("src/cli.rs", "src/apply/mod.rs"),
            ]
        );
    }

    /// A circle is reported once as its component; self-imports and test files are not edges.
    #[test]
    fn cycles_are_components_and_self_imports_are_ignored() {
        let krate = crate_of(&[
            ("src/lib.rs", "mod a; mod b; mod c; mod d;"),
            (
                "src/a.rs",
                "use crate::b::B; use crate::a::A; pub struct A;",
            ),
            ("src/b.rs", "use crate::c::C; pub struct B;"),
            ("src/c.rs", "pub struct C; fn f() { crate::a::A; }"),
            (
                "src/d.rs",
                "use crate::d::D; use crate::a::A; pub struct D;",
            ),
            ("src/tests.rs", "use crate::d::D;"),
        ]);
        let cycles: Vec<Vec<&str>> = krate
            .cycles()
            .iter()
            .map(|cycle| {
                cycle
                    .iter()
                    .map(|&file| krate.files[file].path.as_str())
                    .collect()
            })
            .collect();
        assert_eq!(cycles, [["src/a.rs", "src/b.rs", "src/c.rs"]]);
        assert!(
            render_cycles(&krate, &krate.cycles()).contains("src/c.rs:1 -> src/a.rs (crate::a::A)")
        );
    }

    /// Grouped and inline imports break the rules; `model` may only import itself; tests are exempt.
    #[test]
    fn layering_rules_catch_grouped_inline_and_leaf_imports() {
        let krate = crate_of(&[
            (
                "src/lib.rs",
                "pub mod api; pub mod desired; pub mod model; pub mod state; pub use state::State;",
            ),
            ("src/api/mod.rs", ""),
            ("src/state/mod.rs", "pub struct State;"),
            (
                "src/desired/mod.rs",
                "mod check;\n#[cfg(test)]\nmod tests;\nuse crate::{model::Kind,\n  api::Environment};",
            ),
            (
                "src/desired/check.rs",
                "fn f() { crate::api::Status::Active; }",
            ),
            ("src/desired/tests/mod.rs", "use crate::api::Environment;"),
            (
                "src/model/mod.rs",
                "use crate::model::Kind; use crate::State; pub struct Kind;",
            ),
        ]);
        let found: Vec<String> = krate
            .layering_violations()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "src/desired/check.rs:1: desired -> api: crate::api::Status::Active",
                "src/desired/mod.rs:5: desired -> api: crate::api::Environment",
                "src/model/mod.rs:1: model -> state: crate::State",
            ]
        );
    }
}
