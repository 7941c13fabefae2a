//! How values are written on the wire so the production service's clients read them: timestamps
//! with microseconds and `+00:00` (Python 3.10's `datetime.fromisoformat` cannot read `Z`), and
//! empty collections as `[]`/`{}`, never `null`. Reading accepts either form, and holds the maps
//! it reads at their exact size.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{ExecutionEnvironment, JsonMap};

/// `2026-11-28T20:05:22.314074+00:00`: UTC, microseconds, a numeric offset.
pub fn format_timestamp(timestamp: Timestamp) -> String {
    let text = format!("{:.6}", timestamp);
    match text.strip_suffix('Z') {
        Some(without_zone) => format!("{without_zone}+00:00"),
        None => text,
    }
}

/// Serializes a timestamp as [`format_timestamp`] writes it.
pub fn timestamp<S: Serializer>(timestamp: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_timestamp(*timestamp))
}

/// Serializes an optional timestamp as [`format_timestamp`] writes it, `null` when absent.
pub fn optional_timestamp<S: Serializer>(
    timestamp: &Option<Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match timestamp {
        Some(timestamp) => serializer.serialize_str(&format_timestamp(*timestamp)),
        None => serializer.serialize_none(),
    }
}

/// Serializes an absent object as `{}`.
pub fn object_or_empty<T: Serialize, S: Serializer>(
    value: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => value.serialize(serializer),
        None => JsonMap::new().serialize(serializer),
    }
}

/// Serializes an absent list as `[]`.
pub fn list_or_empty<T: Serialize, S: Serializer>(
    value: &Option<Vec<T>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => value.serialize(serializer),
        None => Vec::<T>::new().serialize(serializer),
    }
}

/// Reads an optional execution environment, `{}` as absent: the service writes an absent one as
/// `{}`, so the two cannot differ, and a plan then keeps no box per listed environment.
pub fn present_execution<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Box<ExecutionEnvironment>>, D::Error> {
    Ok(Option::<ExecutionEnvironment>::deserialize(deserializer)?
        .filter(|execution| !execution.is_empty())
        .map(Box::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_microseconds_and_a_numeric_offset() {
        let at: Timestamp = "2026-11-28T20:05:22.314074912Z".parse().unwrap();
        assert_eq!(format_timestamp(at), "2026-11-28T20:05:22.314074+00:00");
        let whole: Timestamp = "2026-11-28T20:05:22Z".parse().unwrap();
        assert_eq!(format_timestamp(whole), "2026-11-28T20:05:22.000000+00:00");
        // Both forms read back.
        let read: Timestamp = "2026-11-28T20:05:22.314074+00:00".parse().unwrap();
        assert_eq!(read.as_microsecond(), at.as_microsecond());
    }

    #[derive(Deserialize)]
    struct Listed {
        #[serde(default, deserialize_with = "present_execution")]
        execution_environment: Option<Box<ExecutionEnvironment>>,
    }

    #[test]
    fn an_empty_execution_environment_reads_as_absent() {
        let read = |text: &str| {
            serde_json::from_str::<Listed>(text)
                .expect("valid")
                .execution_environment
        };
        assert_eq!(read(r#"{"execution_environment": {}}"#), None);
        assert_eq!(read(r#"{"execution_environment": null}"#), None);
        assert_eq!(read("{}"), None);
        let set = read(r#"{"execution_environment": {"secrets": ["vault"]}}"#).expect("set");
        assert_eq!(set.secrets, ["vault"]);
    }
}
