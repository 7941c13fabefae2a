//! Paging of the service's logs (`GET /api/v1/audit`, `GET /api/v1/state/{workspace}/events`):
//! a `limit` and an opaque `cursor`, answered with the page and a `next_cursor`. A bad `limit`
//! is 422 (it breaks the documented bounds); a cursor the list never answered is 400.
//!
//! A cursor names the last entry a page returned by its id, which only grows (the store assigns
//! ids in commit order: writers are serialized on both databases), so entries appended between
//! two fetches land after the cursor and are read exactly once, unlike with an offset. It also
//! names the list it belongs to, so a cursor of one list is refused by another. It is not a
//! secret and grants nothing: every read is still limited to the caller's organization.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::{EnvironmentError, FieldError};

/// Entries per page when no `limit` is given.
pub const DEFAULT_PAGE_LIMIT: u32 = 1_000;
/// The largest `limit` accepted.
pub const MAX_PAGE_LIMIT: u32 = 10_000;

/// What a paged read asks for: at most `limit` entries after `cursor` (from the start without).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many entries, 1 to [`MAX_PAGE_LIMIT`].
    pub limit: u32,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_PAGE_LIMIT,
            cursor: None,
        }
    }
}

impl PageRequest {
    /// The request a query's `limit` and `cursor` texts make: a 422 naming `limit` when it is not
    /// a whole number from 1 to [`MAX_PAGE_LIMIT`], a 400 naming `cursor` when that is empty.
    pub fn from_query(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, EnvironmentError> {
        let limit = match limit {
            None => DEFAULT_PAGE_LIMIT,
            Some(text) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|limit| (1..=MAX_PAGE_LIMIT).contains(limit))
                .ok_or_else(|| {
                    invalid(
                        "limit",
                        format!("`limit` must be a whole number from 1 to {MAX_PAGE_LIMIT}"),
                    )
                })?,
        };
        if cursor.is_some_and(str::is_empty) {
            return Err(bad_cursor("`cursor` is empty"));
        }
        Ok(Self {
            limit,
            cursor: cursor.map(str::to_owned),
        })
    }

    /// The id entries must come after (0: from the start), from the cursor of the list `scope`.
    pub fn after(&self, scope: &str) -> Result<u64, EnvironmentError> {
        match &self.cursor {
            None => Ok(0),
            Some(cursor) => decode_cursor(cursor, scope),
        }
    }

    /// Splits `rows` (read with a limit of `limit + 1`) into this page and its `next_cursor`.
    pub fn page<T>(
        &self,
        mut rows: Vec<T>,
        scope: &str,
        id: impl Fn(&T) -> u64,
    ) -> (Vec<T>, Option<String>) {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        if rows.len() <= limit {
            return (rows, None);
        }
        rows.truncate(limit);
        let next = rows.last().map(|last| encode_cursor(scope, id(last)));
        (rows, next)
    }
}

/// The cursor after entry `after` of the list `scope`.
pub fn encode_cursor(scope: &str, after: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{scope}:{after}"))
}

/// The entry id a cursor of the list `scope` names; a 400 naming `cursor` for anything else (a
/// well-formed string the list never answered is a bad request, not an invalid field).
pub fn decode_cursor(cursor: &str, scope: &str) -> Result<u64, EnvironmentError> {
    let malformed = || {
        bad_cursor(
            "`cursor` is not a cursor this list answered (pass `next_cursor` back unchanged)",
        )
    };
    let text = URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(malformed)?;
    let (named, after) = text
        .strip_prefix("v1:")
        .and_then(|rest| rest.rsplit_once(':'))
        .ok_or_else(malformed)?;
    if named != scope {
        return Err(malformed());
    }
    // Canonical digits only, so one position has one cursor.
    after
        .parse::<u64>()
        .ok()
        .filter(|value| *value > 0 && value.to_string() == after)
        .ok_or_else(malformed)
}

fn bad_cursor(detail: &str) -> EnvironmentError {
    EnvironmentError::Api {
        status: 400,
        detail: detail.to_owned(),
    }
}

fn invalid(parameter: &str, msg: String) -> EnvironmentError {
    EnvironmentError::Validation {
        errors: vec![FieldError {
            loc: vec!["query".into(), parameter.into()],
            msg,
            kind: format!("invalid_{parameter}"),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(error: EnvironmentError) -> String {
        match error {
            EnvironmentError::Validation { errors } => {
                errors[0].loc[1].as_str().unwrap().to_owned()
            }
            EnvironmentError::Api {
                status: 400,
                detail,
            } if detail.contains("`cursor`") => "cursor".to_owned(),
            other => panic!("neither a 422 nor a 400 naming the cursor: {other:?}"),
        }
    }

    #[test]
    fn limits_outside_the_range_name_the_parameter() {
        for bad in ["0", "-1", "10001", "abc", "", "1.5", "99999999999"] {
            let error = PageRequest::from_query(Some(bad), None).unwrap_err();
            assert_eq!(field(error), "limit", "{bad}");
        }
        assert_eq!(PageRequest::from_query(None, None).unwrap().limit, 1_000);
        assert_eq!(
            PageRequest::from_query(Some("10000"), None).unwrap().limit,
            10_000
        );
    }

    #[test]
    fn cursors_round_trip_only_in_their_own_list() {
        let cursor = encode_cursor("audit", 42);
        assert_eq!(decode_cursor(&cursor, "audit").unwrap(), 42);
        assert_eq!(
            field(decode_cursor(&cursor, "events:main").unwrap_err()),
            "cursor"
        );
        for forged in [
            "!!!".to_owned(),
            URL_SAFE_NO_PAD.encode("v1:audit:0"),
            URL_SAFE_NO_PAD.encode("v1:audit:-3"),
            URL_SAFE_NO_PAD.encode("v1:audit:007"),
            URL_SAFE_NO_PAD.encode("v2:audit:5"),
            URL_SAFE_NO_PAD.encode("audit"),
        ] {
            assert_eq!(
                field(decode_cursor(&forged, "audit").unwrap_err()),
                "cursor",
                "{forged}"
            );
        }
        let empty = PageRequest::from_query(None, Some("")).unwrap_err();
        assert_eq!(field(empty), "cursor");
    }

    #[test]
    fn a_full_page_names_its_last_entry() {
        let request = PageRequest {
            limit: 2,
            cursor: None,
        };
        let (page, next) = request.page(vec![3_u64, 5, 9], "audit", |id| *id);
        assert_eq!(page, [3, 5]);
        assert_eq!(decode_cursor(&next.unwrap(), "audit").unwrap(), 5);
        let (page, next) = request.page(vec![3_u64, 5], "audit", |id| *id);
        assert_eq!(page, [3, 5]);
        assert!(next.is_none());
    }
}
