//! The fixtures of `tests/fixtures/terraform/` read and mapped, and every refusal.

use serde_json::{Value, json};

use super::*;
use crate::model::ManagedField;

const KUBIYA: &str = include_str!("../../tests/fixtures/terraform/kubiya.tfstate");
const FORMAT_3: &str = include_str!("../../tests/fixtures/terraform/format3.tfstate");

fn migration() -> Migration {
    let state = TerraformState::parse(KUBIYA, "kubiya.tfstate").expect("format 4 parses");
    Migration::from_state(&state, "kubiya.tfstate").expect("maps")
}

fn field(environment: &TerraformEnvironment, field: ManagedField) -> Option<&Value> {
    environment
        .fields
        .iter()
        .find(|(candidate, _)| *candidate == field)
        .map(|(_, value)| value)
}

fn environment<'a>(migration: &'a Migration, name: &str) -> &'a TerraformEnvironment {
    migration
        .environments
        .iter()
        .find(|environment| environment.name == name)
        .unwrap_or_else(|| panic!("`{name}` not migrated"))
}

/// A one-resource state around these attributes.
fn state_with(attributes: Value) -> String {
    json!({
        "version": 4,
        "serial": 1,
        "lineage": "l",
        "resources": [{
            "mode": "managed",
            "type": "controlplane_environment",
            "name": "one",
            "instances": [{"attributes": attributes}]
        }]
    })
    .to_string()
}

fn map(text: &str) -> Result<Migration, TerraformError> {
    let state = TerraformState::parse(text, "t.tfstate")?;
    Migration::from_state(&state, "t.tfstate")
}

#[test]
fn the_header_is_read() {
    let state = TerraformState::parse(KUBIYA, "kubiya.tfstate").expect("parses");
    assert_eq!(state.version, 4);
    assert_eq!(state.serial, 42);
    assert_eq!(state.lineage, "6f0c3a1e-93b4-2d7e-51a0-8c2f4e9b7d13");
    assert_eq!(state.terraform_version.as_deref(), Some("1.9.8"));
    assert_eq!(state.resources.len(), 7);
    // Attribute values may be secrets: a debug print shows their names only.
    let debug = format!("{state:?}");
    assert!(debug.contains("execution_environment"), "{debug}");
    assert!(!debug.contains("LOG_LEVEL"), "{debug}");
}

#[test]
fn every_environment_instance_is_migrated_with_its_address_in_any_module() {
    let migration = migration();
    let found: Vec<(&str, &str)> = migration
        .environments
        .iter()
        .map(|environment| (environment.name.as_str(), environment.address.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("legacy-batch", "controlplane_environment.legacy[0]"),
            ("production", "controlplane_environment.production"),
            (
                "region-eu",
                r#"module.regions["eu"].controlplane_environment.this"#
            ),
            (
                "region-us",
                r#"module.regions["us"].controlplane_environment.this"#
            ),
            ("staging", "controlplane_environment.staging"),
        ]
    );
    assert_eq!(
        environment(&migration, "staging").id.to_string(),
        "2b9d6c4e-0d3a-4f7b-9a51-3c8e1f0a6b27"
    );
}

#[test]
fn json_string_attributes_are_parsed_and_env_var_values_left_out() {
    let migration = migration();
    let staging = environment(&migration, "staging");
    let fields: Vec<ManagedField> = staging.fields.iter().map(|(field, _)| *field).collect();
    assert_eq!(
        fields,
        [
            ManagedField::DisplayName,
            ManagedField::Description,
            ManagedField::Configuration,
            ManagedField::Tags,
            ManagedField::Settings,
            ManagedField::ExecutionEnvironment,
        ]
    );
    assert_eq!(
        field(staging, ManagedField::Settings),
        Some(&json!({"region": "us-east-1", "retention_days": 14}))
    );
    assert_eq!(
        field(staging, ManagedField::Configuration),
        Some(&json!({"max_workers": 4}))
    );
    assert_eq!(
        field(staging, ManagedField::Tags),
        Some(&json!(["team:platform", "tier:staging", "cost:shared"]))
    );
    // The names of the variables are kept for the file's comment; their values go nowhere.
    assert_eq!(
        field(staging, ManagedField::ExecutionEnvironment),
        Some(&json!({"secrets": ["DATABASE_URL"]}))
    );
    assert_eq!(staging.env_var_names, ["LOG_LEVEL"]);
    assert!(!format!("{migration:?}").contains("debug"));
}

#[test]
fn read_only_and_empty_attributes_are_not_fields() {
    let migration = migration();
    // `status` is the service's; "" and null attributes say nothing.
    let region = environment(&migration, "region-eu");
    assert_eq!(
        region
            .fields
            .iter()
            .map(|(field, _)| *field)
            .collect::<Vec<_>>(),
        [
            ManagedField::Description,
            ManagedField::Tags,
            ManagedField::Settings
        ]
    );
    assert!(region.env_var_names.is_empty());
}

#[test]
fn dependencies_between_environments_become_depends_on() {
    let migration = migration();
    // `controlplane_project.main` is not an environment: not a dependency in the file.
    assert_eq!(
        environment(&migration, "production").depends_on,
        ["staging"]
    );
    assert_eq!(environment(&migration, "region-eu").depends_on, ["staging"]);
    assert!(environment(&migration, "staging").depends_on.is_empty());
}

#[test]
fn a_dependency_on_a_module_resource_reaches_each_of_its_instances() {
    let text = json!({
        "version": 4, "serial": 1, "lineage": "l",
        "resources": [
            {"module": "module.regions[\"eu\"]", "mode": "managed", "type": "controlplane_environment",
             "name": "this", "instances": [{"attributes": {"id": "00000000-0000-4000-8000-000000000001", "name": "eu"}}]},
            {"module": "module.regions[\"us\"]", "mode": "managed", "type": "controlplane_environment",
             "name": "this", "instances": [{"attributes": {"id": "00000000-0000-4000-8000-000000000002", "name": "us"}}]},
            {"mode": "managed", "type": "controlplane_environment", "name": "edge",
             "instances": [{"index_key": "a", "attributes": {"id": "00000000-0000-4000-8000-000000000003", "name": "edge-a"},
                            "dependencies": ["module.regions.controlplane_environment.this"]}]}
        ]
    })
    .to_string();
    let migration = map(&text).expect("maps");
    assert_eq!(environment(&migration, "edge-a").depends_on, ["eu", "us"]);
    assert_eq!(
        environment(&migration, "edge-a").address,
        r#"controlplane_environment.edge["a"]"#
    );
}

#[test]
fn other_resources_and_data_sources_are_skipped_with_their_address() {
    let migration = migration();
    assert_eq!(
        migration.skipped,
        [
            SkippedResource {
                address: "data.controlplane_environment.default".to_owned(),
                resource_type: "controlplane_environment".to_owned(),
                reason: SkipReason::DataSource,
            },
            SkippedResource {
                address: "controlplane_project.main".to_owned(),
                resource_type: "controlplane_project".to_owned(),
                reason: SkipReason::OtherType,
            },
        ]
    );
}

#[test]
fn only_format_4_is_read() {
    let refused = TerraformState::parse(FORMAT_3, "old.tfstate").expect_err("format 3");
    assert!(
        matches!(&refused, TerraformError::UnsupportedVersion { file, version }
            if file == "old.tfstate" && version == "3"),
        "{refused:?}"
    );
    assert_eq!(
        refused.to_string(),
        "old.tfstate is Terraform state format 3; envform reads format 4"
    );
    let none = TerraformState::parse("{}", "empty.tfstate").expect_err("no version");
    assert!(
        matches!(&none, TerraformError::UnsupportedVersion { version, .. } if version == "none"),
        "{none:?}"
    );
}

#[test]
fn a_document_that_is_not_json_points_where_it_stops() {
    let text = "{\n  \"version\": 4,\n  \"resources\": [,]\n}\n";
    let refused = TerraformState::parse(text, "broken.tfstate").expect_err("not JSON");
    let TerraformError::InvalidDocument { file, span, .. } = &refused else {
        panic!("{refused:?}");
    };
    assert_eq!(file, "broken.tfstate");
    // Line 3, column 17: the stray comma.
    assert_eq!(
        span.map(|span| span.offset()),
        Some(text.find(",]").expect("comma"))
    );
}

#[test]
fn unusable_attributes_name_the_instance_and_never_the_value() {
    let cases = [
        (json!({"name": "a"}), "id", "is missing"),
        (
            json!({"id": "not-a-uuid", "name": "a"}),
            "id",
            "is not an environment id (a UUID)",
        ),
        (
            json!({"id": "00000000-0000-4000-8000-000000000001"}),
            "name",
            "is missing",
        ),
        (
            json!({"id": "00000000-0000-4000-8000-000000000001", "name": "a", "settings": "{\"token\": \"s3cr3t\""}),
            "settings",
            "is a string that is not JSON",
        ),
        (
            json!({"id": "00000000-0000-4000-8000-000000000001", "name": "a", "settings": "[\"s3cr3t\"]"}),
            "settings",
            "holds a list, not a JSON object",
        ),
        (
            json!({"id": "00000000-0000-4000-8000-000000000001", "name": "a", "tags": [1]}),
            "tags",
            "is not a list of strings",
        ),
        (
            json!({"id": "00000000-0000-4000-8000-000000000001", "name": "a", "execution_environment": "{\"env_vars\": \"s3cr3t\"}"}),
            "execution_environment",
            "is not an execution environment",
        ),
    ];
    for (attributes, expected_attribute, expected_problem) in cases {
        let refused = map(&state_with(attributes.clone())).expect_err("refused");
        let TerraformError::InvalidAttribute {
            file,
            address,
            attribute,
            problem,
        } = &refused
        else {
            panic!("{attributes}: {refused:?}");
        };
        assert_eq!(file, "t.tfstate");
        assert_eq!(address, "controlplane_environment.one");
        assert_eq!(*attribute, expected_attribute, "{attributes}");
        assert!(
            problem.starts_with(expected_problem),
            "{attributes}: {problem}"
        );
        assert!(!refused.to_string().contains("s3cr3t"), "{refused}");
    }
}

#[test]
fn two_instances_with_one_name_are_refused() {
    let text = json!({
        "version": 4, "serial": 1, "lineage": "l",
        "resources": [{
            "mode": "managed", "type": "controlplane_environment", "name": "pool",
            "instances": [
                {"index_key": 0, "attributes": {"id": "00000000-0000-4000-8000-000000000001", "name": "same"}},
                {"index_key": 1, "attributes": {"id": "00000000-0000-4000-8000-000000000002", "name": "same"}}
            ]
        }]
    })
    .to_string();
    let refused = map(&text).expect_err("duplicate");
    assert_eq!(
        refused.to_string(),
        "t.tfstate: `same` is the name of both controlplane_environment.pool[0] and \
         controlplane_environment.pool[1]"
    );
}

#[test]
fn module_instance_keys_are_removed_as_dependencies_name_resources() {
    assert_eq!(
        address_without_keys(r#"module.a["x]y"].module.b[2].controlplane_environment.this"#),
        "module.a.module.b.controlplane_environment.this"
    );
    assert_eq!(
        address_without_keys("controlplane_environment.staging"),
        "controlplane_environment.staging"
    );
}

#[test]
fn deposed_objects_are_skipped_and_the_earlier_type_name_is_read() {
    let text = json!({
        "version": 4, "serial": 1, "lineage": "l",
        "resources": [{
            "mode": "managed", "type": "kubiya_control_plane_environment", "name": "app",
            "instances": [
                {"attributes": {"id": "00000000-0000-4000-8000-000000000001", "name": "app"}},
                {"deposed": "5e1f3a2b", "attributes": {"id": "00000000-0000-4000-8000-000000000002", "name": "app"}}
            ]
        }]
    })
    .to_string();
    let migration = map(&text).expect("one current object");
    assert_eq!(migration.environments.len(), 1);
    assert_eq!(
        migration.environments[0].resource_type,
        "kubiya_control_plane_environment"
    );
    assert_eq!(
        migration.skipped,
        [SkippedResource {
            address: "kubiya_control_plane_environment.app".to_owned(),
            resource_type: "kubiya_control_plane_environment".to_owned(),
            reason: SkipReason::Deposed,
        }]
    );
}

#[test]
fn two_instances_of_one_environment_are_refused() {
    let text = json!({
        "version": 4, "serial": 1, "lineage": "l",
        "resources": [
            {"mode": "managed", "type": "controlplane_environment", "name": "old",
             "instances": [{"attributes": {"id": "00000000-0000-4000-8000-000000000001", "name": "one"}}]},
            {"mode": "managed", "type": "controlplane_environment", "name": "new",
             "instances": [{"attributes": {"id": "00000000-0000-4000-8000-000000000001", "name": "two"}}]}
        ]
    })
    .to_string();
    let refused = map(&text).expect_err("one environment twice");
    assert_eq!(
        refused.to_string(),
        "t.tfstate: controlplane_environment.old and controlplane_environment.new are both \
         environment 00000000-0000-4000-8000-000000000001"
    );
}

#[test]
fn an_execution_environment_of_env_vars_only_stays_a_managed_field() {
    let migration = map(&state_with(json!({
        "id": "00000000-0000-4000-8000-000000000001", "name": "vars-only",
        "execution_environment": "{\"env_vars\": {\"API_TOKEN\": \"s3cr3t\"}}"
    })))
    .expect("maps");
    let environment = &migration.environments[0];
    assert_eq!(
        field(environment, ManagedField::ExecutionEnvironment),
        Some(&json!({}))
    );
    assert_eq!(environment.env_var_names, ["API_TOKEN"]);
    assert!(!format!("{migration:?}").contains("s3cr3t"));
}
