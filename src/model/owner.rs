//! Ownership: which configuration manages an environment. Every environment envform creates,
//! adopts or imports carries the lineage of the state that manages it under [`OWNER_KEY`] in its
//! `settings`, the part of an environment the production service keeps. So a second
//! configuration (or a second state, by a typo in its workspace name) can see that an
//! environment is taken, whatever state it reads.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::JsonMap;

/// The `settings` key of the ownership stamp.
pub const OWNER_KEY: &str = "envform_owner";

/// Identifies one history of a state: a state with another lineage is another history, and an
/// environment stamped with another lineage belongs to another configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lineage(pub Uuid);

impl Lineage {
    /// A fresh lineage, for a state never written.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for Lineage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The ownership stamp of an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The lineage of the state that manages it.
    pub lineage: Lineage,
    /// Whether its configuration protects it with `lifecycle.prevent_destroy`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prevent_destroy: bool,
}

impl Owner {
    /// The stamp in `settings`, when there is a well-formed one.
    pub fn of(settings: Option<&JsonMap>) -> Option<Self> {
        serde_json::from_value(settings?.get(OWNER_KEY)?.clone()).ok()
    }

    /// The stamp as its `settings` value.
    pub fn to_value(self) -> Value {
        let mut stamp = JsonMap::new();
        stamp.insert(
            "lineage".to_owned(),
            Value::String(self.lineage.to_string()),
        );
        if self.prevent_destroy {
            stamp.insert("prevent_destroy".to_owned(), Value::Bool(true));
        }
        Value::Object(stamp)
    }

    /// `settings` with this stamp in it.
    pub fn stamped(self, settings: Option<JsonMap>) -> JsonMap {
        let mut settings = settings.unwrap_or_default();
        settings.insert(OWNER_KEY.to_owned(), self.to_value());
        settings
    }

    /// `settings` as a configuration sees it: without the stamp, `None` when nothing else is left.
    pub fn unstamped(settings: Option<&JsonMap>) -> Option<JsonMap> {
        let settings = settings?;
        if !settings.contains_key(OWNER_KEY) {
            return Some(settings.clone());
        }
        let rest: JsonMap = settings
            .iter()
            .filter(|(key, _)| key.as_str() != OWNER_KEY)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        (!rest.is_empty()).then_some(rest)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "state lineage {}", self.lineage)?;
        if self.prevent_destroy {
            f.write_str(" (prevent_destroy)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> JsonMap {
        match value {
            Value::Object(map) => map,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_stamp_round_trips_through_settings_and_hides_from_the_rest() {
        let owner = Owner {
            lineage: Lineage(Uuid::from_u128(7)),
            prevent_destroy: true,
        };
        let settings = owner.stamped(Some(object(json!({"region": "eu"}))));
        assert_eq!(Owner::of(Some(&settings)), Some(owner));
        assert_eq!(
            Owner::unstamped(Some(&settings)),
            Some(object(json!({"region": "eu"})))
        );
        let only_stamp = owner.stamped(None);
        assert_eq!(Owner::unstamped(Some(&only_stamp)), None);
        assert_eq!(
            settings[OWNER_KEY],
            json!({"lineage": "00000000-0000-0000-0000-000000000007", "prevent_destroy": true})
        );
    }

    #[test]
    fn settings_without_a_well_formed_stamp_have_no_owner() {
        assert_eq!(Owner::of(None), None);
        assert_eq!(Owner::of(Some(&object(json!({"a": 1})))), None);
        assert_eq!(
            Owner::of(Some(&object(json!({OWNER_KEY: "not a stamp"})))),
            None
        );
    }
}
