//! A JSON array read as it arrives: its elements' bytes are gathered into batches of about
//! [`BATCH_BYTES`], each handed out once its last element is in, to be decoded while the rest of
//! the answer is still on the wire (on other cores: a list of 30,000 environments takes longer to
//! decode than to send). The answer is never held whole beside what it decodes to.

use serde::de::DeserializeOwned;

/// The text a batch gathers before it is handed out: a few hundred environments, a few
/// milliseconds of decoding.
pub(super) const BATCH_BYTES: usize = 256 * 1024;

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

/// Splits a JSON array into batches of its elements' text: [`ArrayStream::push`] each chunk as
/// it arrives (it hands out a batch when one is full), then [`ArrayStream::finish`] (the last).
pub(super) struct ArrayStream {
    /// Bytes not yet handed out: whole elements of the batch being gathered, then the start of
    /// an element whose end has not arrived.
    pending: Vec<u8>,
    /// How far into `pending` the scan has gone.
    scanned: usize,
    /// Where the element being read starts in `pending`.
    element_start: usize,
    position: Position,
    /// Bytes of the answer handed out before `pending`, for error offsets.
    consumed: usize,
    /// Where each whole element in `pending` starts and ends.
    elements: Vec<(usize, usize)>,
    /// The index in the array of the first element in `pending`.
    first: usize,
}

/// Whole elements of the array, in order, as text.
#[derive(Debug)]
pub(super) struct Batch {
    text: Vec<u8>,
    /// Where each element starts and ends in `text`.
    elements: Vec<(usize, usize)>,
    /// The index in the array of the first element.
    first: usize,
}

impl Batch {
    /// The elements, decoded.
    pub(super) fn decode<T: DeserializeOwned>(&self) -> Result<Vec<T>, ArrayError> {
        self.elements
            .iter()
            .enumerate()
            .map(|(index, &(start, end))| {
                serde_json::from_slice(&self.text[start..end]).map_err(|source| {
                    ArrayError::Element {
                        index: self.first + index,
                        source,
                    }
                })
            })
            .collect()
    }
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

impl ArrayStream {
    /// A reader that has seen nothing yet.
    pub(super) fn new() -> Self {
        Self {
            pending: Vec::new(),
            scanned: 0,
            element_start: 0,
            position: Position::Start,
            consumed: 0,
            elements: Vec::new(),
            first: 0,
        }
    }

    /// Takes the next chunk of the answer; the batch it fills, if it fills one.
    pub(super) fn push(&mut self, chunk: &[u8]) -> Result<Option<Batch>, ArrayError> {
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
                        self.elements.push((self.element_start, self.scanned + 1));
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
        Ok((self.gathered() >= BATCH_BYTES).then(|| self.hand_out()))
    }

    /// The last batch (`None` when every element was handed out), once the whole answer is in.
    pub(super) fn finish(mut self) -> Result<Option<Batch>, ArrayError> {
        match self.position {
            Position::End => Ok((!self.elements.is_empty()).then(|| self.hand_out())),
            _ => Err(ArrayError::Truncated),
        }
    }

    /// Where the whole elements gathered in `pending` end.
    fn gathered(&self) -> usize {
        self.elements.last().map_or(0, |&(_, end)| end)
    }

    /// The whole elements gathered, as a batch; `pending` keeps what follows them.
    fn hand_out(&mut self) -> Batch {
        let end = self.gathered();
        // Room for the next batch, so gathering it copies nothing again.
        let mut rest = Vec::with_capacity(BATCH_BYTES + BATCH_BYTES / 4);
        rest.extend_from_slice(&self.pending[end..]);
        self.pending.truncate(end);
        let batch = Batch {
            text: std::mem::replace(&mut self.pending, rest),
            elements: std::mem::take(&mut self.elements),
            first: self.first,
        };
        self.first += batch.elements.len();
        self.consumed += end;
        self.scanned -= end;
        self.element_start = self.element_start.saturating_sub(end);
        batch
    }
}

fn syntax(expected: &'static str, offset: usize) -> ArrayError {
    ArrayError::Syntax { expected, offset }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// Reads `text` in chunks of `size` bytes, decoding each batch.
    fn read(text: &str, size: usize) -> Result<Vec<Value>, ArrayError> {
        let mut stream = ArrayStream::new();
        let mut items = Vec::new();
        for chunk in text.as_bytes().chunks(size.max(1)) {
            if let Some(batch) = stream.push(chunk)? {
                items.extend(batch.decode::<Value>()?);
            }
        }
        if let Some(batch) = stream.finish()? {
            items.extend(batch.decode::<Value>()?);
        }
        Ok(items)
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
    fn full_batches_are_handed_out_and_their_bytes_not_kept() {
        let element = format!(r#"{{"a": "{}"}}"#, "x".repeat(1000));
        let count = 2 * BATCH_BYTES / element.len() + 20;
        let text = format!("[{}]", vec![element.as_str(); count].join(", "));
        let mut stream = ArrayStream::new();
        let mut batches = Vec::new();
        for chunk in text.as_bytes().chunks(4096) {
            batches.extend(stream.push(chunk).expect("reads"));
            // Never more than a batch and a chunk waits.
            assert!(stream.pending.len() < BATCH_BYTES + 2 * 4096);
        }
        assert_eq!(batches.len(), 2, "two full batches on the way");
        batches.extend(stream.finish().expect("complete"));
        assert_eq!(batches.len(), 3, "and the rest at the end");
        let firsts: Vec<usize> = batches.iter().map(|batch| batch.first).collect();
        let decoded: Vec<Vec<Value>> = batches
            .iter()
            .map(|batch| batch.decode().expect("decodes"))
            .collect();
        assert_eq!(
            firsts,
            vec![0, decoded[0].len(), decoded[0].len() + decoded[1].len()]
        );
        let all: Vec<Value> = decoded.into_iter().flatten().collect();
        assert_eq!(all.len(), count);
        assert!(
            all.iter()
                .all(|item| item["a"].as_str().map(str::len) == Some(1000))
        );
    }

    #[test]
    fn an_element_error_names_its_index_in_the_whole_array() {
        let good = format!(r#"{{"a": "{}"}}"#, "x".repeat(1000));
        let count = BATCH_BYTES / good.len() + 5;
        let mut elements = vec![good.as_str(); count];
        elements.push(r#"{"a" 1}"#);
        let text = format!("[{}]", elements.join(","));
        let error = read(&text, 8192).expect_err("the last element is broken");
        assert!(
            error
                .to_string()
                .starts_with(&format!("element {count} of the array")),
            "{error}"
        );
    }
}
