//! `envform init --from-terraform`: a Terraform configuration of the Kubiya control-plane
//! provider migrated in one step. Its state (a file or a Terraform HTTP backend) is read, never
//! written; every `controlplane_environment` instance becomes an entry of the desired-state file
//! with what Terraform's state claims, and the ones still live are imported into envform's state
//! with that claim as their last-applied document, stamped as this configuration's. So the first
//! plan shows, as drift, every field where live differs from what Terraform's state said: what the
//! provider reported as applied and never sent.
//!
//! The reading and the mapping are [`crate::terraform`]'s; this file does the I/O around them and
//! the decisions that need live: what is gone, what another configuration owns.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::InitArgs;
use super::entry::Entry;
use crate::api::{Environment, EnvironmentsApi, JsonMap};
use crate::cli::args::{DesiredArgs, StateArgs};
use crate::cli::exit::Exit;
use crate::cli::import::{Imported, record};
use crate::cli::settings::{ProcessVariables, StateSettings, Variables};
use crate::cli::workspace;
use crate::desired::{Desired, DesiredEnvironment, SourceFile, Sources};
use crate::model::{EnvironmentId, ManagedField, Owner};
use crate::plan::{DriftResolution, PlanOptions};
use crate::state::{HttpBackend, HttpBackendSettings, PASSWORD_VARIABLES, State, StateBackend};
use crate::terraform::{
    Migration, SkipReason, SkippedResource, TerraformEnvironment, TerraformState,
};

/// The variable Terraform's HTTP backend reads its user name from, used when no
/// `--state-username` is given.
const TERRAFORM_USERNAME_VARIABLE: &str = "TF_HTTP_USERNAME";

/// A Terraform state document as read.
struct Source {
    /// Its path, or its address without a password.
    name: String,
    /// The document.
    text: String,
}

/// Runs `envform init --from-terraform SOURCE`.
pub(super) async fn execute(args: &InitArgs, source: &str) -> miette::Result<Exit> {
    let source = read_source(source, &args.state, &ProcessVariables).await?;
    let terraform = TerraformState::parse(&source.text, &source.name)?;
    let migration = Migration::from_state(&terraform, &source.name)?;

    let directory = DesiredArgs {
        paths: vec![args.path.clone()],
    }
    .config_directory(false);
    let settings = args.state.resolve(&directory, None, &ProcessVariables);
    let state_name = describe_state(&settings);
    let backend = workspace::open_backend(settings)?;
    let target = args.target.resolve()?;
    let connection = workspace::connect(&target).await?;
    let handle = match workspace::lock(backend.as_ref(), "init", &args.lock).await {
        Ok(handle) => handle,
        Err(error) => {
            connection.close().await;
            return Err(error);
        }
    };
    let inputs = Inputs {
        source: &source,
        terraform: &terraform,
        migration: &migration,
    };
    let migrated = migrate(
        args,
        &inputs,
        &target.describe(),
        connection.api.as_ref(),
        backend.as_ref(),
        &handle,
    )
    .await;
    workspace::unlock(backend.as_ref(), handle).await;
    let summary = match migrated {
        Ok(migrated) => {
            let disagreements = first_drift(connection.api.as_ref(), &migrated).await;
            Ok((migrated, disagreements))
        }
        Err(error) => Err(error),
    };
    connection.close().await;
    let (migrated, disagreements) = summary?;
    eprint!(
        "{}",
        summary_text(&inputs, &migrated, &disagreements, &args.path, &state_name)
    );
    super::super::output::next_step(&finish_hint(&migration, &args.path, &args.state));
    Ok(Exit::Success)
}

/// What the migration starts from.
struct Inputs<'a> {
    source: &'a Source,
    terraform: &'a TerraformState,
    migration: &'a Migration,
}

/// What the migration did, for the summary and the first plan.
struct Migrated {
    /// The desired state as written.
    desired: Desired,
    /// envform's state as saved.
    state: State,
    /// The environments imported, by name.
    imported: BTreeSet<String>,
    /// The environments whose id is no longer live, by name, with the id of a live namesake.
    gone: BTreeMap<String, Option<EnvironmentId>>,
    /// The environments live under another name than Terraform's state says: live's name →
    /// Terraform's.
    renamed: BTreeMap<String, String>,
}

/// Under the state lock: the checks against live, then the file, then state, then the stamps.
async fn migrate(
    args: &InitArgs,
    inputs: &Inputs<'_>,
    target: &str,
    api: &dyn EnvironmentsApi,
    backend: &dyn StateBackend,
    handle: &crate::state::LockHandle,
) -> miette::Result<Migrated> {
    let live = api.list(None).await.map_err(miette::Report::new)?;
    let mut state = workspace::load_state(backend, target, args.state.control_plane_moved).await?;
    let matched = match_live(inputs.migration, &live, &state)?;

    let text = file_text(inputs, &matched);
    // Checked before it is written: a file envform cannot read is never left behind.
    let desired = crate::desired::parse(Sources {
        files: vec![SourceFile {
            path: args.path.clone(),
            text: text.clone(),
        }],
    })
    .map_err(|error| {
        miette::Report::new(error).wrap_err(format!(
            "the file migrated from {} would not be valid, so nothing was written",
            inputs.source.name
        ))
    })?;
    super::write_file(&args.path, &text)?;

    // Terraform's claim is what was last applied: live differing from it is drift.
    let digests = crate::plan::SecretDigests::of(&state);
    let imported: Vec<Imported<'_>> = matched
        .live
        .iter()
        .filter_map(|(environment, live)| {
            let wanted = desired.environment(&environment.name)?;
            // Under its live name: the file renames it from there, in place.
            Some(Imported {
                name: live.name.clone(),
                live,
                last_applied: claimed(wanted, live, digests),
                depends_on: environment.depends_on.clone(),
                prevent_destroy: false,
            })
        })
        .collect();
    record(api, backend, handle, &mut state, &imported).await?;
    let imported = matched
        .live
        .iter()
        .map(|(environment, _)| environment.name.clone())
        .collect();
    Ok(Migrated {
        desired,
        state,
        imported,
        gone: matched
            .gone
            .iter()
            .map(|(environment, namesake)| (environment.name.clone(), namesake.map(|live| live.id)))
            .collect(),
        renamed: matched
            .live
            .iter()
            .filter(|(environment, live)| environment.name != live.name)
            .map(|(environment, live)| (live.name.clone(), environment.name.clone()))
            .collect(),
    })
}

/// Reads the Terraform state at `source`: an http(s) address is a Terraform HTTP backend, read
/// with the HTTP state's user name and password; anything else is a file.
async fn read_source(
    source: &str,
    state: &StateArgs,
    variables: &dyn Variables,
) -> miette::Result<Source> {
    if !(source.starts_with("http://") || source.starts_with("https://")) {
        let text = workspace::read_text(Path::new(source))?;
        return Ok(Source {
            name: source.to_owned(),
            text,
        });
    }
    let mut settings = HttpBackendSettings::new(source);
    settings.username = state
        .state_username
        .clone()
        .or_else(|| variables.get(TERRAFORM_USERNAME_VARIABLE));
    settings.password = PASSWORD_VARIABLES
        .iter()
        .find_map(|name| variables.get(name))
        .map(secrecy::SecretString::from);
    let backend = HttpBackend::new(settings).map_err(miette::Report::new)?;
    let name = backend.address();
    let Some(body) = backend.load_document().await.map_err(miette::Report::new)? else {
        return Err(miette::miette!(
            code = "envform::terraform::no_state",
            "there is no Terraform state at {name}"
        ));
    };
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| miette::miette!("the Terraform state at {name} is not UTF-8 text"))?;
    Ok(Source { name, text })
}

/// The instances set beside live.
struct Matched<'a> {
    /// Instances whose environment is live, with it.
    live: Vec<(&'a TerraformEnvironment, &'a Environment)>,
    /// Instances whose id is no longer live (in the file, so the next plan creates them), with a
    /// live environment of their name, if one was made since.
    gone: Vec<(&'a TerraformEnvironment, Option<&'a Environment>)>,
}

/// Finds each instance's live environment by id, and refuses, all at once, instances that another
/// envform configuration owns (by id, or by name when the id is gone) or that this state already
/// manages under another id.
fn match_live<'a>(
    migration: &'a Migration,
    live: &'a [Environment],
    state: &State,
) -> miette::Result<Matched<'a>> {
    let mut matched = Matched {
        live: Vec::new(),
        gone: Vec::new(),
    };
    let mut refusals = Vec::new();
    for environment in &migration.environments {
        let by_id = live.iter().find(|live| live.id == environment.id);
        let by_name = live.iter().find(|live| live.name == environment.name);
        for candidate in by_id.into_iter().chain(by_name) {
            if let Some(owner) = Owner::of(candidate.settings.as_ref())
                && owner.lineage != state.lineage
            {
                refusals.push(format!(
                    "`{}` ({}, id {}) is owned by another envform configuration ({owner})",
                    candidate.name, environment.address, candidate.id
                ));
                break;
            }
        }
        if let Some(managed) = state.resources.get(&environment.name)
            && managed.id != environment.id
        {
            refusals.push(format!(
                "`{}` ({}) is already in this configuration's state with id {}",
                environment.name, environment.address, managed.id
            ));
        }
        match by_id {
            Some(live) => matched.live.push((environment, live)),
            None => matched.gone.push((environment, by_name)),
        }
    }
    if !refusals.is_empty() {
        return Err(miette::miette!(
            code = "envform::init::owned_elsewhere",
            help = "leave them to their configuration: `terraform state rm` them before migrating \
                    (or, to move one here on purpose, migrate the rest, add it to the file and run \
                    `envform import NAME --take-over`)",
            "cannot migrate {} environment(s); nothing was written:\n  {}",
            refusals.len(),
            refusals.join("\n  ")
        ));
    }
    Ok(matched)
}

/// The desired-state file: a header naming the Terraform state, then one entry per instance.
fn file_text(inputs: &Inputs<'_>, matched: &Matched<'_>) -> String {
    let terraform = inputs.terraform;
    let mut text = format!(
        "# Desired state migrated by `envform init --from-terraform` from {}\n\
         # (Terraform state lineage {}, serial {}). Terraform's state was only read.\n\
         # Each environment below that is still live is in envform's state with what Terraform's\n\
         # state claimed: `envform plan` shows, as drift, every field where live differs.\n\
         version: 1\n\
         environments:\n",
        inputs.source.name,
        if terraform.lineage.is_empty() {
            "unknown"
        } else {
            &terraform.lineage
        },
        terraform.serial,
    );
    if inputs.migration.environments.is_empty() {
        text.push_str("  []\n");
    }
    for environment in &inputs.migration.environments {
        let live = matched
            .live
            .iter()
            .find(|(candidate, _)| candidate.name == environment.name)
            .map(|(_, live)| *live);
        let namesake = matched
            .gone
            .iter()
            .find(|(candidate, _)| candidate.name == environment.name)
            .and_then(|(_, namesake)| namesake.map(|live| live.id));
        for line in entry(environment, live, namesake).lines() {
            let _ = writeln!(text, "  {line}");
        }
    }
    text
}

/// One instance as a file entry.
fn entry(
    environment: &TerraformEnvironment,
    live: Option<&Environment>,
    namesake: Option<EnvironmentId>,
) -> Entry {
    let mut comments = vec![environment.address.clone()];
    if live.is_none() {
        comments.push(format!("Gone: {}.", gone_note(environment, namesake)));
    }
    let renamed_from = live
        .filter(|live| live.name != environment.name)
        .map(|live| live.name.clone());
    if let Some(previous) = &renamed_from {
        comments.push(format!(
            "Live, it is still named `{previous}`: the plan renames it as Terraform's state says."
        ));
    }
    let writes_execution = environment
        .fields
        .iter()
        .any(|(field, _)| *field == ManagedField::ExecutionEnvironment);
    let live_has_env_vars = live
        .and_then(|live| live.execution_environment.as_ref())
        .is_some_and(|execution| !execution.env_vars.is_empty());
    let env_vars_kept_live =
        writes_execution && (!environment.env_var_names.is_empty() || live_has_env_vars);
    if !environment.env_var_names.is_empty() {
        comments.push(format!(
            "env_vars {}: values not written here (secrets); to manage them in this file, add",
            environment.env_var_names.join(", ")
        ));
        comments.push(
            "them under execution_environment.env_vars and drop `ignore_changes` below.".to_owned(),
        );
    }
    Entry {
        comments,
        name: environment.name.clone(),
        fields: environment
            .fields
            .iter()
            .map(|(field, value)| (field.wire_name(), value.clone()))
            .collect(),
        depends_on: environment.depends_on.clone(),
        renamed_from,
        env_vars_kept_live,
    }
}

/// The last-applied document of an imported environment: what Terraform's state claimed, as
/// the file now says it, with live's `env_vars` where the file leaves them to live (as an apply
/// would record them), so that only real disagreements show as drift.
fn claimed(
    wanted: &DesiredEnvironment,
    live: &Environment,
    digests: crate::plan::SecretDigests,
) -> JsonMap {
    let mut document = crate::plan::last_applied(wanted, digests);
    let ignores_env_vars = wanted
        .lifecycle
        .ignore_changes
        .iter()
        .any(|path| path.0 == ["execution_environment", "env_vars"]);
    if ignores_env_vars
        && let Some(Value::Object(execution)) = document.get_mut("execution_environment")
        && let Some(Value::Object(live_execution)) = ManagedField::ExecutionEnvironment.live_value(
            live,
            &wanted.fields.nonsensitive,
            digests,
        )
        && let Some(env_vars) = live_execution.get("env_vars")
    {
        execution.insert("env_vars".to_owned(), env_vars.clone());
    }
    document
}

/// One field of one environment where Terraform's state and live disagree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Disagreement {
    name: String,
    field: String,
}

/// The fields the first plan shows as drift (what the summary counts), or why it cannot say.
async fn first_drift(
    api: &dyn EnvironmentsApi,
    migrated: &Migrated,
) -> Result<Vec<Disagreement>, String> {
    // Listed again: the stamps are live now, as the next plan will see them.
    let live = api
        .list(None)
        .await
        .map_err(|error| crate::local::error_chain(&error))?;
    let plan = crate::plan::diff(
        &migrated.desired,
        &live,
        &migrated.state,
        &PlanOptions::default(),
    )
    .map_err(|errors| {
        let problems: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
        problems.join("; ")
    })?;
    let mut fields: BTreeSet<Disagreement> = plan
        .drift()
        .iter()
        .filter(|drift| drift.resolution != DriftResolution::Ignored)
        .filter_map(|drift| {
            // Drift names live's name; the summary speaks of Terraform's.
            let name = migrated.renamed.get(&drift.name).unwrap_or(&drift.name);
            Some(Disagreement {
                name: name.clone(),
                field: drift.path.0.first()?.clone(),
            })
        })
        .collect();
    // A name is not drift (it is the identity), but Terraform's state claiming another one is a
    // disagreement all the same; the plan renames it.
    fields.extend(migrated.renamed.values().map(|name| Disagreement {
        name: name.clone(),
        field: "name".to_owned(),
    }));
    Ok(fields.into_iter().collect())
}

/// Where the migrated configuration's state is, for the summary.
fn describe_state(settings: &StateSettings) -> String {
    match settings {
        // `./` is how a bare file name's directory comes back; it only adds noise.
        StateSettings::Local(path) => path.strip_prefix(".").unwrap_or(path).display().to_string(),
        StateSettings::Http(settings) => HttpBackend::new((**settings).clone())
            .map_or_else(|_| "the HTTP state".to_owned(), |backend| backend.address()),
    }
}

/// The summary: what was read, migrated, skipped, and where Terraform's state and live disagree.
fn summary_text(
    inputs: &Inputs<'_>,
    migrated: &Migrated,
    disagreements: &Result<Vec<Disagreement>, String>,
    path: &Path,
    state_name: &str,
) -> String {
    let migration = inputs.migration;
    let mut text = format!(
        "Read {} (Terraform state lineage {}, serial {}).\n\
         Wrote {} with {} environment(s); imported {} into {state_name}.\n",
        inputs.source.name,
        inputs.terraform.lineage,
        inputs.terraform.serial,
        path.display(),
        migration.environments.len(),
        migrated.imported.len(),
    );
    let width = migration
        .environments
        .iter()
        .map(|environment| environment.address.len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        text,
        "\n{} environment(s) migrated:",
        migrated.imported.len()
    );
    for environment in &migration.environments {
        if migrated.imported.contains(&environment.name) {
            let _ = writeln!(
                text,
                "  {:width$}  -> {} ({})",
                environment.address, environment.name, environment.id
            );
        }
    }
    let skipped = skipped_lines(migration, migrated);
    let _ = writeln!(text, "{} skipped:", skipped.len());
    for line in skipped {
        let _ = writeln!(text, "  {line}");
    }
    match disagreements {
        Ok(fields) => {
            let _ = writeln!(
                text,
                "{} field(s) where Terraform's state and live disagree{}",
                fields.len(),
                if fields.is_empty() {
                    "."
                } else {
                    " (the next plan shows them as drift and sets them as Terraform's state says):"
                }
            );
            for field in fields {
                let _ = writeln!(text, "  {}: {}", field.name, field.field);
            }
        }
        Err(problem) => {
            let _ = writeln!(
                text,
                "The fields where Terraform's state and live disagree are not known: the first plan \
                 fails ({problem}); run `envform plan` to see why."
            );
        }
    }
    text
}

/// What becomes of an instance whose id is no longer live (`namesake`: a live environment of its
/// name, made since).
fn gone_note(environment: &TerraformEnvironment, namesake: Option<EnvironmentId>) -> String {
    match namesake {
        None => format!(
            "id {} no longer exists live; `{}` is in the file, so the next plan creates it",
            environment.id, environment.name
        ),
        Some(id) => format!(
            "id {} no longer exists live, and `{}` is another environment now (id {id}), owned by \
             no configuration: `envform import {}` takes it under management",
            environment.id, environment.name, environment.name
        ),
    }
}

/// The skipped instances: gone environments first, then the other resources.
fn skipped_lines(migration: &Migration, migrated: &Migrated) -> Vec<String> {
    let mut lines: Vec<String> = migration
        .environments
        .iter()
        .filter_map(|environment| {
            let namesake = migrated.gone.get(&environment.name)?;
            Some(format!(
                "{} ({}): {}",
                environment.address,
                environment.resource_type,
                gone_note(environment, *namesake)
            ))
        })
        .collect();
    lines.extend(migration.skipped.iter().map(
        |SkippedResource {
             address,
             resource_type,
             reason,
         }| {
            let why = match reason {
                SkipReason::OtherType => "not an environment",
                SkipReason::DataSource => "a data source",
                SkipReason::Deposed => "a deposed object, left for Terraform to destroy",
            };
            format!("{address} ({resource_type}): {why}")
        },
    ));
    lines
}

/// How to finish: the plan, then Terraform letting go of what envform now manages.
fn finish_hint(migration: &Migration, path: &Path, state: &StateArgs) -> String {
    let addresses: Vec<String> = migration
        .environments
        .iter()
        .map(|environment| format!("'{}'", environment.address.replace('\'', r"'\''")))
        .collect();
    let file = if path == Path::new("envform.yaml") {
        String::new()
    } else {
        format!(" -f {}", path.display())
    };
    let flags = if state.state_address.is_some() {
        " (with the same --state-address)"
    } else {
        ""
    };
    format!(
        "Run `envform plan{file}`{flags} to see the drift, then `envform apply{file}`.\n\
         Then let Terraform forget them (its state was only read), or drop its workspace:\n  \
         terraform state rm {}",
        addresses.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Lineage;
    use crate::state::ResourceState;

    const ONE: &str = "00000000-0000-4000-8000-000000000001";
    const TWO: &str = "00000000-0000-4000-8000-000000000002";

    fn live(id: &str, name: &str, settings: Value) -> Environment {
        serde_json::from_value(json!({
            "id": id, "name": name, "status": "ready", "settings": settings,
            "execution_environment": {"env_vars": {"TOKEN": "live-secret"}},
        }))
        .expect("an environment")
    }

    fn migration(environments: &[(&str, &str)]) -> Migration {
        Migration {
            environments: environments
                .iter()
                .map(|(id, name)| TerraformEnvironment {
                    address: format!("controlplane_environment.{name}"),
                    resource_type: "controlplane_environment".to_owned(),
                    id: id.parse().expect("an id"),
                    name: (*name).to_owned(),
                    fields: vec![(ManagedField::Tags, json!(["a"]))],
                    env_var_names: Vec::new(),
                    depends_on: Vec::new(),
                })
                .collect(),
            skipped: Vec::new(),
        }
    }

    fn stamp_of(lineage: Lineage) -> Value {
        json!({"envform_owner": {"lineage": lineage.to_string()}})
    }

    #[test]
    fn live_ids_are_imported_and_gone_ones_are_listed() {
        let migration = migration(&[(ONE, "kept"), (TWO, "gone")]);
        let live = [live(ONE, "kept", Value::Null)];
        let state = State::empty("t");
        let matched = match_live(&migration, &live, &state).expect("nothing owned");
        assert_eq!(matched.live.len(), 1);
        assert_eq!(matched.live[0].1.name, "kept");
        assert_eq!(
            matched
                .gone
                .iter()
                .map(|(environment, namesake)| (environment.name.as_str(), namesake.is_some()))
                .collect::<Vec<_>>(),
            [("gone", false)]
        );
    }

    #[test]
    fn a_gone_id_whose_name_was_made_again_is_told_to_import_it() {
        let migration = migration(&[(ONE, "again")]);
        let live = [live(TWO, "again", Value::Null)];
        let matched = match_live(&migration, &live, &State::empty("t")).expect("nothing owned");
        let namesake = matched.gone[0].1.map(|live| live.id);
        assert_eq!(namesake, Some(TWO.parse().expect("an id")));
        let note = gone_note(matched.gone[0].0, namesake);
        assert_eq!(
            note,
            format!(
                "id {ONE} no longer exists live, and `again` is another environment now (id {TWO}), \
                 owned by no configuration: `envform import again` takes it under management"
            )
        );
    }

    #[test]
    fn environments_owned_elsewhere_are_refused_all_at_once_by_id_or_by_name() {
        let other = Lineage::new_random();
        let migration = migration(&[(ONE, "by-id"), (TWO, "by-name")]);
        // `by-name`'s id is gone, and another configuration made one of that name since.
        let live = [
            live(ONE, "by-id", stamp_of(other)),
            live(
                "00000000-0000-4000-8000-000000000003",
                "by-name",
                stamp_of(other),
            ),
        ];
        let refused = match_live(&migration, &live, &State::empty("t"))
            .err()
            .expect("refused");
        let message = refused.to_string();
        assert!(
            message.contains("cannot migrate 2 environment(s)"),
            "{message}"
        );
        assert!(message.contains(&format!(
            "`by-id` (controlplane_environment.by-id, id {ONE})"
        )));
        assert!(message.contains(
            "`by-name` (controlplane_environment.by-name, id 00000000-0000-4000-8000-000000000003)"
        ));
        assert!(message.contains(&other.to_string()), "{message}");
    }

    #[test]
    fn this_configurations_own_stamp_and_state_entry_are_no_refusal() {
        let mut state = State::empty("t");
        state.resources.insert(
            "mine".to_owned(),
            ResourceState {
                id: ONE.parse().expect("an id"),
                last_applied: crate::state::AppliedFields::default(),
                prevent_destroy: false,
                depends_on: Vec::new(),
                renamed_from: None,
            },
        );
        let live = [live(ONE, "mine", stamp_of(state.lineage))];
        assert!(match_live(&migration(&[(ONE, "mine")]), &live, &state).is_ok());
        // The same name under another id is another environment.
        let refused = match_live(&migration(&[(TWO, "mine")]), &[], &state)
            .err()
            .expect("refused");
        assert!(
            refused.to_string().contains(&format!(
                "is already in this configuration's state with id {ONE}"
            )),
            "{refused}"
        );
    }

    #[test]
    fn the_claim_keeps_lives_env_var_digests_where_the_file_leaves_them_live() {
        let desired = crate::desired::parse(Sources {
            files: vec![SourceFile {
                path: "envform.yaml".into(),
                text: "version: 1\nenvironments:\n  - name: app\n    tags: [x]\n    \
                       execution_environment: {secrets: [S]}\n    \
                       lifecycle: {ignore_changes: [execution_environment.env_vars]}\n"
                    .to_owned(),
            }],
        })
        .expect("a valid file");
        let wanted = desired.environment("app").expect("app");
        let digests = crate::plan::SecretDigests::of(&State::empty("t"));
        let claim = claimed(wanted, &live(ONE, "app", Value::Null), digests);
        assert_eq!(claim["tags"], json!(["x"]));
        assert_eq!(claim["execution_environment"]["secrets"], json!(["S"]));
        let digest = claim["execution_environment"]["env_vars"]["TOKEN"]
            .as_str()
            .expect("a digest");
        assert!(digest.starts_with("hmac-sha256:"), "{digest}");
        assert!(
            !Value::Object(claim.clone())
                .to_string()
                .contains("live-secret")
        );
    }

    #[test]
    fn the_finishing_hint_names_the_file_and_quotes_every_address_for_the_shell() {
        let mut migration = migration(&[(ONE, "a")]);
        migration.environments[0].address =
            r#"module.m["it's"].controlplane_environment.a"#.to_owned();
        let hint = finish_hint(
            &migration,
            Path::new("envs/main.yaml"),
            &StateArgs::default(),
        );
        assert!(
            hint.starts_with("Run `envform plan -f envs/main.yaml`"),
            "{hint}"
        );
        assert!(
            hint.ends_with(
                r#"terraform state rm 'module.m["it'\''s"].controlplane_environment.a'"#
            ),
            "{hint}"
        );
    }
}
