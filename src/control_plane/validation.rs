//! Body validation of create and update calls: every problem is reported at once, as 422 field
//! errors, before anything is read or written.

use crate::api::{
    CreateEnvironment, EnvironmentError, FieldError, JsonMap, Patch, Status, UpdateEnvironment,
};
use crate::model::{
    ExecutionEnvironment, NAME_MAX_CHARS, NAME_MIN_CHARS, NameProblem, text_problem,
};

/// `configuration` keys that must be integers ≥ 1 when present.
const POSITIVE_INTEGER_KEYS: [&str; 2] = ["max_workers", "timeout_seconds"];

/// A create body checked: 422 with every problem, or `Ok` when it may be written.
pub(crate) fn check_create(data: &CreateEnvironment) -> Result<(), EnvironmentError> {
    as_result(validate_create(data))
}

/// An update body checked: 422 with every problem, or `Ok` when it may be written.
pub(crate) fn check_update(patch: &UpdateEnvironment) -> Result<(), EnvironmentError> {
    as_result(validate_update(patch))
}

fn as_result(errors: Vec<FieldError>) -> Result<(), EnvironmentError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EnvironmentError::Validation { errors })
    }
}

/// The problems of a create body.
pub(crate) fn validate_create(data: &CreateEnvironment) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_name(&data.name, &mut errors);
    if let Some(display_name) = &data.display_name {
        check_text("display_name", display_name, &mut errors);
    }
    if let Some(status) = data.status {
        check_status(status, &mut errors);
    }
    if let Some(configuration) = &data.configuration {
        check_configuration(configuration, &mut errors);
    }
    if let Some(execution) = &data.execution_environment {
        check_env_vars(execution, &mut errors);
    }
    errors
}

/// The problems of an update body.
pub(crate) fn validate_update(patch: &UpdateEnvironment) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match &patch.name {
        Patch::Unchanged => {}
        Patch::Clear => errors.push(FieldError::body(
            &["name"],
            "name cannot be null: every environment has a name",
            "string_type",
        )),
        Patch::Set(name) => check_name(name, &mut errors),
    }
    if let Patch::Set(display_name) = &patch.display_name {
        check_text("display_name", display_name, &mut errors);
    }
    match patch.status {
        Patch::Unchanged => {}
        Patch::Clear => errors.push(FieldError::body(
            &["status"],
            "status cannot be null: set `active` or `inactive`",
            "enum",
        )),
        Patch::Set(status) => check_status(status, &mut errors),
    }
    if let Patch::Set(configuration) = &patch.configuration {
        check_configuration(configuration, &mut errors);
    }
    if let Patch::Set(execution) = &patch.execution_environment {
        check_env_vars(execution, &mut errors);
    }
    errors
}

/// Environment variables are strings: a number or an object would reach the worker in a form
/// it cannot set. The error names the key, never the value (values are secrets).
fn check_env_vars(execution: &ExecutionEnvironment, errors: &mut Vec<FieldError>) {
    for (key, value) in &execution.env_vars {
        if !value.is_string() {
            errors.push(FieldError::body(
                &["execution_environment", "env_vars", key],
                format!("env_vars value of `{key}` must be a string"),
                "string_type",
            ));
        }
    }
}

fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    let length = name.chars().count();
    if length < NAME_MIN_CHARS {
        errors.push(FieldError::body(
            &["name"],
            format!("name must be at least {NAME_MIN_CHARS} characters long (got {length})"),
            "string_too_short",
        ));
    } else if length > NAME_MAX_CHARS {
        errors.push(FieldError::body(
            &["name"],
            format!("name must be at most {NAME_MAX_CHARS} characters long (got {length})"),
            "string_too_long",
        ));
    } else {
        check_text("name", name, errors);
    }
}

/// Control and invisible characters forge log lines and terminal output, and outer whitespace
/// makes names that look alike: refused as the desired-file checker refuses them.
fn check_text(field: &str, text: &str, errors: &mut Vec<FieldError>) {
    let why = match text_problem(text) {
        None => return,
        Some(NameProblem::ControlCharacter) => "control characters (newlines, escapes, …)",
        Some(NameProblem::InvisibleCharacter) => {
            "invisible characters (zero-width spaces, bidirectional overrides, …)"
        }
        Some(_) => "leading or trailing whitespace",
    };
    errors.push(FieldError::body(
        &[field],
        format!("{field} cannot hold {why}"),
        "string_pattern_mismatch",
    ));
}

fn check_status(status: Status, errors: &mut Vec<FieldError>) {
    if !status.is_user_settable() {
        errors.push(FieldError::body(
            &["status"],
            format!(
                "status must be `active` or `inactive`, not `{status}`: the service sets \
                 `provisioning`, `ready` and `error` itself"
            ),
            "enum",
        ));
    }
}

fn check_configuration(configuration: &JsonMap, errors: &mut Vec<FieldError>) {
    for key in POSITIVE_INTEGER_KEYS {
        let Some(value) = configuration.get(key) else {
            continue;
        };
        // `null` means "not set", as for any optional integer.
        if value.is_null() {
            continue;
        }
        let kind = match value.as_i64() {
            Some(number) if number >= 1 => continue,
            Some(_) => "greater_than_equal",
            // Above i64::MAX: past what the desired-file checker and the API description accept.
            None if value.is_u64() => "less_than_equal",
            // `5.0` is the integer 5, as JSON Schema (and so the API description) reads it.
            None => match value.as_f64() {
                Some(number)
                    if number.fract() == 0.0 && number >= 1.0 && number < i64::MAX as f64 =>
                {
                    continue;
                }
                Some(number) if number.fract() == 0.0 && number < 1.0 => "greater_than_equal",
                _ => "int_type",
            },
        };
        errors.push(FieldError::body(
            &["configuration", key],
            if kind == "less_than_equal" {
                format!("{key} must be at most {} (got {value})", i64::MAX)
            } else {
                format!("{key} must be an integer greater than or equal to 1 (got {value})")
            },
            kind,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn configuration(value: serde_json::Value) -> JsonMap {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn reports_every_create_problem_at_once() {
        let data = CreateEnvironment {
            name: "x".into(),
            status: Some(Status::Ready),
            configuration: Some(configuration(
                json!({"max_workers": 0, "timeout_seconds": "soon", "other": -5}),
            )),
            ..CreateEnvironment::default()
        };
        let errors = validate_create(&data);
        let summary: Vec<_> = errors
            .iter()
            .map(|error| (error.path(), error.kind.as_str(), error.msg.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "name".to_owned(),
                    "string_too_short",
                    "name must be at least 2 characters long (got 1)"
                ),
                (
                    "status".to_owned(),
                    "enum",
                    "status must be `active` or `inactive`, not `ready`: the service sets \
                     `provisioning`, `ready` and `error` itself"
                ),
                (
                    "configuration.max_workers".to_owned(),
                    "greater_than_equal",
                    "max_workers must be an integer greater than or equal to 1 (got 0)"
                ),
                (
                    "configuration.timeout_seconds".to_owned(),
                    "int_type",
                    "timeout_seconds must be an integer greater than or equal to 1 (got \"soon\")"
                ),
            ]
        );
        assert_eq!(errors[0].loc, [json!("body"), json!("name")]);
    }

    #[test]
    fn name_length_counts_characters_at_both_bounds() {
        assert!(validate_create(&CreateEnvironment::named("ab")).is_empty());
        assert!(validate_create(&CreateEnvironment::named("é".repeat(100))).is_empty());
        let errors = validate_create(&CreateEnvironment::named("é".repeat(101)));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, "string_too_long");
        assert_eq!(
            errors[0].msg,
            "name must be at most 100 characters long (got 101)"
        );
    }

    #[test]
    fn every_non_user_status_is_refused() {
        for status in [Status::Provisioning, Status::Ready, Status::Error] {
            let data = CreateEnvironment {
                status: Some(status),
                ..CreateEnvironment::named("ok")
            };
            let errors = validate_create(&data);
            assert_eq!(errors.len(), 1, "{status}");
            assert!(errors[0].msg.contains(&format!("not `{status}`")));
        }
        for status in [Status::Active, Status::Inactive] {
            let patch = UpdateEnvironment {
                status: Patch::Set(status),
                ..UpdateEnvironment::default()
            };
            assert!(validate_update(&patch).is_empty());
        }
    }

    #[test]
    fn configuration_accepts_positive_integers_null_and_unknown_keys() {
        let data = CreateEnvironment {
            configuration: Some(configuration(json!({
                "max_workers": 1,
                "timeout_seconds": null,
                "anything": {"nested": true}
            }))),
            ..CreateEnvironment::named("ok")
        };
        assert!(validate_create(&data).is_empty());
        let fractional = CreateEnvironment {
            configuration: Some(configuration(json!({"timeout_seconds": 2.5}))),
            ..CreateEnvironment::named("ok")
        };
        assert_eq!(validate_create(&fractional)[0].kind, "int_type");
        // An integer written with a fraction part is that integer, as JSON Schema reads it;
        // past the largest integer, or below 1, it is refused.
        let integral = CreateEnvironment {
            configuration: Some(configuration(json!({"max_workers": 5.0}))),
            ..CreateEnvironment::named("ok")
        };
        assert!(validate_create(&integral).is_empty());
        for (value, kind) in [
            (json!(0.0), "greater_than_equal"),
            (json!(18_446_744_073_709_552_001.0), "int_type"),
            (json!(9_223_372_036_854_775_808_u64), "less_than_equal"),
        ] {
            let refused = CreateEnvironment {
                configuration: Some(configuration(json!({ "max_workers": value }))),
                ..CreateEnvironment::named("ok")
            };
            assert_eq!(validate_create(&refused)[0].kind, kind);
        }
    }

    #[test]
    fn update_refuses_clearing_name_and_status_and_checks_set_values() {
        let patch = UpdateEnvironment {
            name: Patch::Clear,
            status: Patch::Clear,
            configuration: Patch::Set(configuration(json!({"max_workers": -1}))),
            ..UpdateEnvironment::default()
        };
        let errors = validate_update(&patch);
        let summary: Vec<_> = errors
            .iter()
            .map(|error| (error.path(), error.kind.clone(), error.msg.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "name".to_owned(),
                    "string_type".to_owned(),
                    "name cannot be null: every environment has a name".to_owned()
                ),
                (
                    "status".to_owned(),
                    "enum".to_owned(),
                    "status cannot be null: set `active` or `inactive`".to_owned()
                ),
                (
                    "configuration.max_workers".to_owned(),
                    "greater_than_equal".to_owned(),
                    "max_workers must be an integer greater than or equal to 1 (got -1)".to_owned()
                ),
            ]
        );
        let rename = UpdateEnvironment {
            name: Patch::Set("z".into()),
            ..UpdateEnvironment::default()
        };
        assert_eq!(validate_update(&rename)[0].kind, "string_too_short");
        // Clearing configuration is allowed.
        let clear = UpdateEnvironment {
            configuration: Patch::Clear,
            ..UpdateEnvironment::default()
        };
        assert!(validate_update(&clear).is_empty());
    }

    #[test]
    fn control_and_invisible_characters_and_outer_whitespace_are_refused() {
        let corpus = [
            "nul\u{0}name",
            "line\nbreak",
            "\u{1b}[31mred",
            "zero\u{200B}width",
            "rtl\u{202E}override",
            " leading",
            "trailing ",
        ];
        for name in corpus {
            let errors = validate_create(&CreateEnvironment {
                name: name.to_owned(),
                ..CreateEnvironment::default()
            });
            assert_eq!(errors.len(), 1, "{name:?}: {errors:?}");
            let patch = UpdateEnvironment {
                display_name: Patch::Set(name.to_owned()),
                ..UpdateEnvironment::default()
            };
            assert_eq!(validate_update(&patch).len(), 1, "{name:?}");
        }
        assert!(
            validate_create(&CreateEnvironment {
                name: "Production (EU)".to_owned(),
                ..CreateEnvironment::default()
            })
            .is_empty()
        );
    }
}
