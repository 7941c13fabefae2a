//! Paths inside managed field values, and the leaf-by-leaf comparison that drift, `ignore_changes`
//! and the displays share, so all of them agree on what "changed under `metadata.owner`" means.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A path into an environment's managed fields: a field's wire name, then object keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ValuePath(pub Vec<String>);

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// One place where two values differ: both sides are leaves, or one side is missing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeafDifference {
    /// Where, from the top of the compared values.
    pub path: Vec<String>,
    /// The value on the left (`None`: absent).
    pub before: Option<Value>,
    /// The value on the right (`None`: absent).
    pub after: Option<Value>,
}

/// The leaves where `before` and `after` differ. Objects on both sides are compared key by key
/// (keys sorted, so the result is deterministic); anything else is compared whole.
pub(crate) fn leaf_differences(
    before: Option<&Value>,
    after: Option<&Value>,
) -> Vec<LeafDifference> {
    let mut out = Vec::new();
    collect(&mut Vec::new(), before, after, &mut out);
    out
}

fn collect(
    path: &mut Vec<String>,
    before: Option<&Value>,
    after: Option<&Value>,
    out: &mut Vec<LeafDifference>,
) {
    match (before, after) {
        // Equal objects have no differing leaf: skip collecting their keys.
        (left, right) if left == right => {}
        (Some(Value::Object(left)), Some(Value::Object(right))) => {
            let keys: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
            for key in keys {
                path.push(key.clone());
                collect(path, left.get(key), right.get(key), out);
                path.pop();
            }
        }
        (left, right) => out.push(LeafDifference {
            path: path.clone(),
            before: left.cloned(),
            after: right.cloned(),
        }),
    }
}

/// The value at `path` inside `value` (an empty path is the value itself).
pub(crate) fn get<'a>(value: Option<&'a Value>, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value?, |current, key| current.as_object()?.get(key))
}

/// `value` with the part at `path` replaced by `new` (`None` removes it). Missing objects on the
/// way are created when there is something to put; removing from nothing leaves nothing.
pub(crate) fn set(value: Option<Value>, path: &[String], new: Option<Value>) -> Option<Value> {
    let Some((key, rest)) = path.split_first() else {
        return new;
    };
    let mut object = match value {
        Some(Value::Object(object)) => object,
        other if new.is_none() => return other,
        _ => serde_json::Map::new(),
    };
    let inner = set(object.remove(key), rest, new);
    if let Some(inner) = inner {
        object.insert(key.clone(), inner);
    }
    // Keys are re-inserted at the end; sort so the result does not depend on edit order.
    object.sort_keys();
    Some(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|part| (*part).to_owned()).collect()
    }

    #[test]
    fn leaf_differences_descend_into_objects_only() {
        let before = json!({"a": 1, "b": {"c": 2, "d": 3}, "list": [1, 2]});
        let after = json!({"a": 1, "b": {"c": 4}, "list": [1, 3], "e": true});
        let found = leaf_differences(Some(&before), Some(&after));
        let paths: Vec<String> = found.iter().map(|d| d.path.join(".")).collect();
        assert_eq!(paths, ["b.c", "b.d", "e", "list"]);
        assert_eq!(found[1].after, None);
        assert_eq!(found[2].before, None);
        assert_eq!(found[3].after, Some(json!([1, 3])));
    }

    #[test]
    fn set_creates_and_removes_nested_keys() {
        let value = Some(json!({"a": {"b": 1}}));
        let added = set(value.clone(), &path(&["a", "c"]), Some(json!(2)));
        assert_eq!(added, Some(json!({"a": {"b": 1, "c": 2}})));
        let removed = set(value, &path(&["a", "b"]), None);
        assert_eq!(removed, Some(json!({"a": {}})));
        assert_eq!(set(None, &path(&["x"]), None), None);
        assert_eq!(
            set(None, &path(&["x"]), Some(json!(1))),
            Some(json!({"x": 1}))
        );
        assert_eq!(
            get(Some(&json!({"a": {"b": 1}})), &path(&["a", "b"])),
            Some(&json!(1))
        );
    }
}
