//! One environment as it is written into a starter desired-state file: by `envform init` from a
//! live environment, and by `envform init --from-terraform` from a Terraform instance. Values
//! are written as JSON, which YAML reads as flow-style scalars, maps and lists, so no value can
//! break the file whatever it holds.

use serde_json::Value;

/// The lines of one entry of `environments:`, before indentation.
#[derive(Debug, Clone, Default)]
pub(super) struct Entry {
    /// Comment lines above the entry (without `# `).
    pub(super) comments: Vec<String>,
    /// `name`.
    pub(super) name: String,
    /// Managed fields by wire name, in display order.
    pub(super) fields: Vec<(&'static str, Value)>,
    /// `depends_on`.
    pub(super) depends_on: Vec<String>,
    /// `renamed_from`.
    pub(super) renamed_from: Option<String>,
    /// Whether `execution_environment.env_vars` is left out of the file (its values are
    /// secrets), so live's stay, outside the file's control.
    pub(super) env_vars_kept_live: bool,
}

impl Entry {
    /// The entry as YAML lines, unindented.
    pub(super) fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .comments
            .iter()
            .map(|comment| format!("# {comment}"))
            .collect();
        lines.push(format!("- name: {}", json(&Value::from(self.name.clone()))));
        for (key, value) in &self.fields {
            lines.push(format!("  {key}: {}", json(value)));
        }
        if !self.depends_on.is_empty() {
            let names: Vec<String> = self
                .depends_on
                .iter()
                .map(|name| json(&Value::from(name.clone())))
                .collect();
            lines.push(format!("  depends_on: [{}]", names.join(", ")));
        }
        if let Some(previous) = &self.renamed_from {
            lines.push(format!(
                "  renamed_from: {}",
                json(&Value::from(previous.clone()))
            ));
        }
        if self.env_vars_kept_live {
            lines.push(
                "  lifecycle: {ignore_changes: [execution_environment.env_vars]}  # values kept live, not written here"
                    .to_owned(),
            );
        }
        lines
    }
}

fn json(value: &Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_entry_is_flow_style_json_with_its_comments_first() {
        let entry = Entry {
            comments: vec!["from Terraform".to_owned()],
            name: "prod: eu".to_owned(),
            fields: vec![
                ("description", json!("a # not a comment")),
                ("tags", json!(["x"])),
            ],
            depends_on: vec!["staging".to_owned()],
            renamed_from: Some("prod".to_owned()),
            env_vars_kept_live: true,
        };
        assert_eq!(
            entry.lines(),
            [
                "# from Terraform",
                r#"- name: "prod: eu""#,
                r#"  description: "a # not a comment""#,
                r#"  tags: ["x"]"#,
                r#"  depends_on: ["staging"]"#,
                r#"  renamed_from: "prod""#,
                "  lifecycle: {ignore_changes: [execution_environment.env_vars]}  # values kept live, not written here",
            ]
        );
    }
}
