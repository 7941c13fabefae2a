//! What state records as last applied to one environment, held as compact JSON text: every plan
//! reads every entry, and a map per entry costs four to five times its text. The planner parses
//! an entry when it plans that environment and drops the copy after.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{CompactMap, JsonMap, compact_map_from_str};

/// The managed fields as last applied: a JSON object's compact text (secrets as digests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedFields(Box<str>);

impl AppliedFields {
    /// The fields of `map`, in its order.
    pub fn new(map: &JsonMap) -> Self {
        // A map of JSON values always serializes.
        Self(serde_json::to_string(map).map_or_else(|_| "{}".into(), String::into_boxed_str))
    }

    /// The fields as a map.
    pub fn to_map(&self) -> JsonMap {
        // Built only from a map, so the text is always an object.
        compact_map_from_str(&self.0).unwrap_or_default()
    }

    /// Whether no field is recorded.
    pub fn is_empty(&self) -> bool {
        &*self.0 == "{}"
    }
}

impl Default for AppliedFields {
    fn default() -> Self {
        Self("{}".into())
    }
}

impl From<JsonMap> for AppliedFields {
    fn from(map: JsonMap) -> Self {
        Self::new(&map)
    }
}

impl PartialEq<JsonMap> for AppliedFields {
    /// The same fields and values, in any order.
    fn eq(&self, map: &JsonMap) -> bool {
        self.to_map() == *map
    }
}

impl Serialize for AppliedFields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AppliedFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        CompactMap::deserialize(deserializer).map(|map| Self::new(&map.0))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn map(value: Value) -> JsonMap {
        let Value::Object(map) = value else {
            unreachable!("an object literal")
        };
        map
    }

    #[test]
    fn the_fields_read_back_as_written_in_their_order() {
        let written = map(json!({"metadata": {"b": 1, "a": [true, null]}, "description": "x"}));
        let applied = AppliedFields::new(&written);
        assert_eq!(applied.to_map(), written);
        assert_eq!(
            serde_json::to_string(&applied).expect("serializes"),
            r#"{"metadata":{"b":1,"a":[true,null]},"description":"x"}"#
        );
        let read: AppliedFields = serde_json::from_str(
            "{ \"metadata\" : {\"b\":1, \"a\":[true, null]},\n \"description\":\"x\" }",
        )
        .expect("an object reads");
        assert_eq!(read, applied, "whitespace is not kept");
        assert!(serde_json::from_str::<AppliedFields>("[1]").is_err());
    }

    #[test]
    fn equal_to_a_map_in_any_order_and_empty_by_default() {
        let applied = AppliedFields::new(&map(json!({"a": 1, "b": 2})));
        assert!(applied == map(json!({"b": 2, "a": 1})));
        assert!(applied != map(json!({"a": 1})));
        assert!(AppliedFields::default().is_empty());
        assert!(AppliedFields::default() == JsonMap::new());
        assert!(!applied.is_empty());
    }
}
