//! JSON maps read at their exact size: what a plan keeps of every listed environment for as long
//! as it runs is read with no room to grow, where a map read entry by entry reserves room for
//! three. Each map's entries are gathered first and the map built once at their count, so each
//! key is hashed once.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use super::JsonMap;

/// Reads an optional JSON object with every map in it, nested ones too, at its exact size.
pub fn compact_object<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<JsonMap>, D::Error> {
    Ok(Option::<CompactMap>::deserialize(deserializer)?.map(|map| map.0))
}

/// A JSON object's text read as a map at its exact size.
pub fn compact_map_from_str(text: &str) -> serde_json::Result<JsonMap> {
    serde_json::from_str::<CompactMap>(text).map(|map| map.0)
}

/// A JSON object read at its exact size.
pub struct CompactMap(pub JsonMap);

impl<'de> Deserialize<'de> for CompactMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_map(CompactVisitor)? {
            Value::Object(map) => Ok(Self(map)),
            // `deserialize_map` calls `visit_map` or fails.
            _ => Err(de::Error::custom("expected an object")),
        }
    }
}

/// A JSON value whose maps and lists are read at their exact size.
struct Compact(Value);

impl<'de> Deserialize<'de> for Compact {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CompactVisitor).map(Compact)
    }
}

/// What `serde_json::Value`'s own visitor reads, with maps and lists built at their size.
struct CompactVisitor;

impl<'de> Visitor<'de> for CompactVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Compact::deserialize(deserializer).map(|value| value.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Compact(item)) = seq.next_element()? {
            items.push(item);
        }
        items.shrink_to_fit();
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, Compact(value))) = access.next_entry::<String, Compact>()? {
            entries.push((key, value));
        }
        // Built once at its size; a key written twice keeps its last value, as serde_json does.
        let mut map = JsonMap::with_capacity(entries.len());
        map.extend(entries);
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(serde::Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "compact_object")]
        map: Option<JsonMap>,
    }

    #[test]
    fn a_compact_map_reads_what_serde_json_reads_in_the_same_order() {
        let text = r#"{"map": {"b": {"y": [1, {"z": null}], "x": 2.5, "w": -3}, "a": "text",
            "t": true, "a": "again", "e": {}, "l": []}}"#;
        let read = serde_json::from_str::<Holder>(text)
            .expect("reads")
            .map
            .expect("present");
        let whole: Value = serde_json::from_str(text).expect("reads");
        assert_eq!(Value::Object(read.clone()), whole["map"]);
        assert_eq!(
            serde_json::to_string(&read).expect("serializes"),
            serde_json::to_string(&whole["map"]).expect("serializes")
        );
        assert_eq!(read["a"], json!("again"));
        let absent = |text: &str| serde_json::from_str::<Holder>(text).expect("reads").map;
        assert_eq!(absent(r#"{"map": null}"#), None);
        assert_eq!(absent("{}"), None);
        assert!(serde_json::from_str::<Holder>(r#"{"map": [1]}"#).is_err());
        let from_text = compact_map_from_str(&serde_json::to_string(&read).expect("serializes"));
        assert_eq!(from_text.expect("an object"), read);
        assert!(compact_map_from_str("[]").is_err());
    }
}
