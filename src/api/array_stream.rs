//! A JSON array read as it arrives: each element is decoded once its last byte is in, and its
//! bytes are then dropped. A list of 30,000 environments is so decoded while the rest of the
//! answer is still on the wire, and never held whole beside what it decodes to.

use serde::de::DeserializeOwned;

/// Where the reader is in the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Before the opening `[`.
    Start,
    /// After `[` or an element: next comes an element, `,` or `]`.
    Between {
        /// Whether an element was read (so a `,` may come).
        after_element: bool,
        /// Whether a `,` was read since the last element (so an element must come).
        after_comma: bool,
    },
    /// Inside an element.
    Element {
        /// Nesting of `{` and `[` within it.
        depth: usize,
        /// Inside a string.
        in_string: bool,
        /// After a `\` in a string.
        escaped: bool,
    },
    /// After the closing `]`: only whitespace may follow.
    End,
}

/// Reads a JSON array of `T` from chunks of bytes: [`ArrayStream::push`] each chunk as it
/// arrives, then [`ArrayStream::finish`].
pub(super) struct ArrayStream<T> {
    /// Bytes not yet decoded: the start of an element whose end has not arrived.
    pending: Vec<u8>,
    /// How far into `pending` the scan has gone.
    scanned: usize,
    /// Where the element being read starts in `pending`.
    element_start: usize,
    position: Position,
    /// Bytes of the answer consumed before `pending`, for error offsets.
    consumed: usize,
    items: Vec<T>,
}

/// Why an answer is not a JSON array of the expected elements.
#[derive(Debug, thiserror::Error)]
pub(super) enum ArrayError {
    /// A byte the array's syntax does not allow there.
    #[error("expected {expected} at byte {offset} of the answer")]
    Syntax {
        /// What the array's syntax allows at that point.
        expected: &'static str,
        /// Where, from the answer's start.
        offset: usize,
    },
    /// The answer ended inside the array.
    #[error("the answer ended before its array did")]
    Truncated,
    /// An element that does not decode.
    #[error("element {index} of the array: {source}")]
    Element {
        /// Its index in the array.
        index: usize,
        /// What serde found.
        source: serde_json::Error,
    },
}

impl<T: DeserializeOwned> ArrayStream<T> {
    /// A reader that has seen nothing yet.
    pub(super) fn new() -> Self {
        Self {
            pending: Vec::new(),
            scanned: 0,
            element_start: 0,
            position: Position::Start,
            consumed: 0,
            items: Vec::new(),
        }
    }

    /// Takes the next chunk of the answer, decoding every element it completes.
    pub(super) fn push(&mut self, chunk: &[u8]) -> Result<(), ArrayError> {
        self.pending.extend_from_slice(chunk);
        while self.scanned < self.pending.len() {
            if let Position::Element {
                in_string,
                escaped: false,
                ..
            } = self.position
            {
                // Most of an element's bytes change nothing here: the scan jumps to the next one
                // that can (a quote or backslash in a string; a quote or bracket outside one).
                let rest = &self.pending[self.scanned..];
                let next = if in_string {
                    memchr::memchr2(b'"', b'\\', rest)
                } else {
                    rest.iter()
                        .position(|byte| matches!(byte, b'"' | b'{' | b'}' | b'[' | b']'))
                };
                let Some(next) = next else {
                    self.scanned = self.pending.len();
                    break;
                };
                self.scanned += next;
            }
            let byte = self.pending[self.scanned];
            let offset = self.consumed + self.scanned;
            self.position = match self.position {
                Position::Start => match byte {
                    b'[' => Position::Between {
                        after_element: false,
                        after_comma: false,
                    },
                    _ if byte.is_ascii_whitespace() => Position::Start,
                    _ => return Err(syntax("`[`", offset)),
                },
                Position::Between {
                    after_element,
                    after_comma,
                } => match byte {
                    _ if byte.is_ascii_whitespace() => self.position,
                    b',' if after_element && !after_comma => Position::Between {
                        after_element,
                        after_comma: true,
                    },
                    b']' if !after_comma => Position::End,
                    _ if after_element && !after_comma => return Err(syntax("`,` or `]`", offset)),
                    b'{' | b'[' => {
                        self.element_start = self.scanned;
                        Position::Element {
                            depth: 1,
                            in_string: false,
                            escaped: false,
                        }
                    }
                    _ => return Err(syntax("an object", offset)),
                },
                Position::Element {
                    depth,
                    in_string: true,
                    escaped,
                } => Position::Element {
                    depth,
                    in_string: escaped || byte != b'"',
                    escaped: !escaped && byte == b'\\',
                },
                Position::Element { depth, .. } => {
                    let depth = match byte {
                        b'{' | b'[' => depth + 1,
                        b'}' | b']' => depth - 1,
                        _ => depth,
                    };
                    if depth == 0 {
                        self.decode_element()?;
                        Position::Between {
                            after_element: true,
                            after_comma: false,
                        }
                    } else {
                        Position::Element {
                            depth,
                            in_string: byte == b'"',
                            escaped: false,
                        }
                    }
                }
                Position::End if byte.is_ascii_whitespace() => Position::End,
                Position::End => return Err(syntax("the end of the answer", offset)),
            };
            self.scanned += 1;
        }
        self.drop_decoded();
        Ok(())
    }

    /// The elements, once the whole answer is in.
    pub(super) fn finish(self) -> Result<Vec<T>, ArrayError> {
        match self.position {
            Position::End => {
                // The list lives as long as the plan: the growth's slack is given back (a shrink
                // is made in place, without a copy).
                let mut items = self.items;
                items.shrink_to_fit();
                Ok(items)
            }
            _ => Err(ArrayError::Truncated),
        }
    }

    /// Decodes the element that ends at the byte being scanned.
    fn decode_element(&mut self) -> Result<(), ArrayError> {
        let bytes = &self.pending[self.element_start..=self.scanned];
        let item = serde_json::from_slice(bytes).map_err(|source| ArrayError::Element {
            index: self.items.len(),
            source,
        })?;
        self.items.push(item);
        self.element_start = self.scanned + 1;
        Ok(())
    }

    /// Drops the bytes before the element being read (all of them between elements).
    fn drop_decoded(&mut self) {
        let keep_from = match self.position {
            Position::Element { .. } => self.element_start,
            _ => self.scanned,
        };
        self.pending.drain(..keep_from);
        self.consumed += keep_from;
        self.scanned -= keep_from;
        self.element_start -= keep_from.min(self.element_start);
    }
}

fn syntax(expected: &'static str, offset: usize) -> ArrayError {
    ArrayError::Syntax { expected, offset }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Reads `text` in chunks of `size` bytes.
    fn read(text: &str, size: usize) -> Result<Vec<Value>, ArrayError> {
        let mut stream = ArrayStream::new();
        for chunk in text.as_bytes().chunks(size.max(1)) {
            stream.push(chunk)?;
        }
        stream.finish()
    }

    #[test]
    fn any_chunking_reads_what_a_whole_parse_reads() {
        let text = r#" [ {"a": "x]}\"{[", "b": [1, {"c": []}], "d": "\\"},
            {"e": {}} ,{"f":"\\\\"} ] "#;
        let whole: Vec<Value> = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(whole.len(), 3);
        for size in 1..=text.len() {
            assert_eq!(read(text, size).expect("reads"), whole, "chunks of {size}");
        }
    }

    #[test]
    fn an_empty_array_is_no_elements() {
        assert_eq!(read("[]", 1).expect("reads"), Vec::<Value>::new());
        assert_eq!(read(" [ \n ] \n", 3).expect("reads"), Vec::<Value>::new());
    }

    #[test]
    fn malformed_answers_are_refused() {
        for (text, expected) in [
            ("{}", "expected `[` at byte 0"),
            ("[,{}]", "expected an object at byte 1"),
            ("[{},]", "expected an object at byte 4"),
            ("[{} {}]", "expected `,` or `]` at byte 4"),
            ("[{}] x", "expected the end of the answer at byte 5"),
            ("[1]", "expected an object at byte 1"),
            ("[{}", "the answer ended before its array did"),
            ("[{\"a\": \"}", "the answer ended before its array did"),
            ("", "the answer ended before its array did"),
            ("[{\"a\" 1}]", "element 0 of the array"),
        ] {
            for size in [1, 2, text.len().max(1)] {
                let error = read(text, size).expect_err(text).to_string();
                assert!(error.starts_with(expected), "{text:?}: {error}");
            }
        }
    }

    #[test]
    fn decoded_bytes_are_not_kept() {
        let mut stream = ArrayStream::<Value>::new();
        stream.push(br#"[{"a": 1}, {"b": "#).expect("reads");
        assert_eq!(stream.pending, br#"{"b": "#);
        stream.push(br#"2}]"#).expect("reads");
        assert!(stream.pending.is_empty());
        assert_eq!(
            stream.finish().expect("complete"),
            vec![json!({"a": 1}), json!({"b": 2})]
        );
    }
}
