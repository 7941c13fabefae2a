//! JSON maps held at their exact size: what a plan keeps of every listed environment for as long
//! as it runs is read with no room to grow, where a map read entry by entry reserves room for
//! three.

use serde_json::Value;

use super::JsonMap;

/// `map` rebuilt at its exact size, nested maps and lists too (collecting an iterator of known
/// length reserves just that).
pub fn compacted(map: JsonMap) -> JsonMap {
    map.into_iter()
        .map(|(key, value)| (key, compacted_value(value)))
        .collect()
}

fn compacted_value(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(compacted(map)),
        Value::Array(items) => Value::Array(items.into_iter().map(compacted_value).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_compacted_map_is_equal_in_contents_and_order() {
        let Value::Object(map) = json!({"b": {"y": [1, {"z": null}], "x": 2}, "a": "text"}) else {
            unreachable!("an object literal");
        };
        let compacted = compacted(map.clone());
        assert_eq!(compacted, map);
        assert_eq!(
            serde_json::to_string(&compacted).expect("serializes"),
            serde_json::to_string(&map).expect("serializes")
        );
    }
}
