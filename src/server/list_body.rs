//! The list answer written as it is sent: the JSON array of environments serialized a run at a
//! time into the body stream, instead of into one buffer the size of the whole answer first.
//! The bytes are those `axum::Json` writes for the same list.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::Environment;

/// Environments serialized per chunk of the body: some 100 KB.
const CHUNK_ENVIRONMENTS: usize = 128;

/// A `200` answer whose body is `environments` as a JSON array, streamed.
pub(crate) fn json_array(environments: Arc<Vec<Environment>>) -> Response {
    let mut response = Body::from_stream(ArrayChunks {
        environments,
        next: 0,
        started: false,
        finished: false,
    })
    .into_response();
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The array's chunks: `[` with the first run, `,`-joined runs, `]` with the last.
struct ArrayChunks {
    /// Shared with the list cache: serialized from where it is, never copied.
    environments: Arc<Vec<Environment>>,
    /// The first environment not yet written.
    next: usize,
    started: bool,
    finished: bool,
}

impl ArrayChunks {
    fn next_chunk(&mut self) -> Result<Option<Bytes>, serde_json::Error> {
        if self.finished {
            return Ok(None);
        }
        let mut chunk = Vec::with_capacity(64 * 1024);
        if !self.started {
            chunk.push(b'[');
        }
        let end = self
            .environments
            .len()
            .min(self.next.saturating_add(CHUNK_ENVIRONMENTS));
        for environment in &self.environments[self.next..end] {
            if self.started {
                chunk.push(b',');
            }
            self.started = true;
            serde_json::to_writer(&mut chunk, environment)?;
        }
        self.next = end;
        if self.next == self.environments.len() {
            chunk.push(b']');
            self.finished = true;
        }
        // An empty list still opens the array in its one chunk.
        self.started = true;
        Ok(Some(Bytes::from(chunk)))
    }
}

impl futures_core::Stream for ArrayChunks {
    type Item = Result<Bytes, serde_json::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.next_chunk().transpose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environments(count: usize) -> Vec<Environment> {
        (0..count)
            .map(|index| {
                serde_json::from_value(serde_json::json!({
                    "id": uuid::Uuid::from_u128(index as u128 + 1),
                    "name": format!("env-{index}"),
                    "display_name": format!("Env {index}"),
                    "status": "active",
                    "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-01-01T00:00:00Z",
                }))
                .expect("an environment")
            })
            .collect()
    }

    fn streamed(list: Vec<Environment>) -> Vec<u8> {
        let mut chunks = ArrayChunks {
            environments: Arc::new(list),
            next: 0,
            started: false,
            finished: false,
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = chunks.next_chunk().expect("serializes") {
            bytes.extend_from_slice(&chunk);
        }
        bytes
    }

    #[test]
    fn the_streamed_array_is_byte_for_byte_the_whole_one() {
        for count in [
            0,
            1,
            2,
            CHUNK_ENVIRONMENTS - 1,
            CHUNK_ENVIRONMENTS,
            CHUNK_ENVIRONMENTS + 1,
            3 * CHUNK_ENVIRONMENTS + 5,
        ] {
            let list = environments(count);
            let whole = serde_json::to_vec(&list).expect("serializes");
            assert_eq!(streamed(list), whole, "{count} environments");
        }
    }
}
