//! The field flags of `env create` and `env update`, and how they become a patch.

use crate::api::{JsonMap, ManagedField, Patch, Status, UpdateEnvironment};

/// Field flags shared by `create` and `update`.
#[derive(Debug, clap::Args)]
pub(crate) struct FieldFlags {
    /// Display name.
    #[arg(long)]
    pub(super) display_name: Option<String>,
    /// Description.
    #[arg(long)]
    pub(super) description: Option<String>,
    /// Status: active or inactive.
    #[arg(long, value_parser = parse_status)]
    pub(super) status: Option<Status>,
    /// configuration.max_workers (≥ 1); on update, other configuration keys are kept.
    #[arg(long)]
    pub(super) max_workers: Option<u64>,
    /// configuration.timeout_seconds (≥ 1).
    #[arg(long)]
    pub(super) timeout_seconds: Option<u64>,
    /// A metadata entry KEY=VALUE (repeatable; replaces all metadata).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(super) metadata: Vec<(String, String)>,
    /// A tag (repeatable; replaces all tags).
    #[arg(long = "tag")]
    pub(super) tags: Vec<String>,
}

impl FieldFlags {
    pub(super) fn configuration(&self) -> Option<JsonMap> {
        if self.max_workers.is_none() && self.timeout_seconds.is_none() {
            return None;
        }
        let mut configuration = JsonMap::new();
        if let Some(max_workers) = self.max_workers {
            configuration.insert("max_workers".into(), max_workers.into());
        }
        if let Some(timeout_seconds) = self.timeout_seconds {
            configuration.insert("timeout_seconds".into(), timeout_seconds.into());
        }
        Some(configuration)
    }

    pub(super) fn metadata(&self) -> Option<JsonMap> {
        (!self.metadata.is_empty()).then(|| {
            self.metadata
                .iter()
                .map(|(key, value)| (key.clone(), value.clone().into()))
                .collect()
        })
    }

    pub(super) fn tags(&self) -> Option<Vec<String>> {
        (!self.tags.is_empty()).then(|| self.tags.clone())
    }
}

/// The fields `env update --clear` can clear: the registry's clearable ones, shown in `--help`.
pub(super) fn clearable_field() -> impl clap::builder::TypedValueParser<Value = ManagedField> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(ManagedField::wire_names(|spec| spec.clearable))
        .try_map(|name| ManagedField::from_wire_name(&name).ok_or("not a managed field"))
}

pub(super) fn parse_status(text: &str) -> Result<Status, String> {
    text.parse::<Status>().map_err(|error| error.to_string())
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

pub(super) fn apply_flags(
    patch: &mut UpdateEnvironment,
    name: Option<String>,
    fields: &FieldFlags,
    clear: &[ManagedField],
) {
    if let Some(name) = name {
        patch.name = Patch::Set(name);
    }
    if let Some(value) = &fields.display_name {
        patch.display_name = Patch::Set(value.clone());
    }
    if let Some(value) = &fields.description {
        patch.description = Patch::Set(value.clone());
    }
    if let Some(status) = fields.status {
        patch.status = Patch::Set(status);
    }
    if let Some(configuration) = fields.configuration() {
        patch.configuration = Patch::Set(configuration);
    }
    if let Some(metadata) = fields.metadata() {
        patch.metadata = Patch::Set(metadata);
    }
    if let Some(tags) = fields.tags() {
        patch.tags = Patch::Set(tags);
    }
    for field in clear {
        patch.clear(*field);
    }
}
