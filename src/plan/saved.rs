//! A saved plan (`plan --out`): the document `plan --format json` writes, plus the paths of the
//! configuration's files and the plan itself, so `apply PLANFILE` works from any directory
//! without `-f` and `show PLANFILE` renders it again. Secret values never enter it: the plan
//! holds their digests, and `apply` reads the values from the files.

use std::path::PathBuf;

use serde::Deserialize;

use super::model::{PLAN_FORMAT_VERSION, Plan, PlanLoadError};
use super::render;

/// The first format, whose saved file was the plan alone; still read.
const FIRST_FORMAT_VERSION: &str = "1.0";

/// A plan and the configuration it was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedPlan {
    /// The plan.
    pub plan: Plan,
    /// The paths `-f` named (absolute when written by `plan --out`); empty when not recorded.
    pub configuration: Vec<PathBuf>,
}

/// The parts of a saved file that are read back; the rendering beside them is for people and
/// programs, and is written again from the plan when shown.
#[derive(Deserialize)]
struct Envelope {
    format_version: String,
    #[serde(default)]
    configuration: Option<Configuration>,
    plan: Option<Plan>,
}

#[derive(Deserialize)]
struct Configuration {
    paths: Vec<PathBuf>,
}

impl SavedPlan {
    /// The saved file's text.
    pub fn to_text(&self) -> Result<String, serde_json::Error> {
        saved_text(&self.plan, &self.configuration)
    }

    /// Reads a saved file; the JSON rendering alone, or another format version, is refused.
    pub fn from_text(text: &str) -> Result<Self, PlanLoadError> {
        let envelope: Envelope = serde_json::from_str(text)?;
        if envelope.format_version == FIRST_FORMAT_VERSION {
            // Saved before the rendering and the paths were added: the file is the plan.
            return Ok(Self {
                plan: serde_json::from_str(text)?,
                configuration: Vec::new(),
            });
        }
        if envelope.format_version != PLAN_FORMAT_VERSION {
            return Err(PlanLoadError::FormatVersion {
                found: envelope.format_version,
            });
        }
        let plan = envelope.plan.ok_or(PlanLoadError::NotSaved)?;
        Ok(Self {
            plan,
            configuration: envelope
                .configuration
                .map(|configuration| configuration.paths)
                .unwrap_or_default(),
        })
    }
}

impl Plan {
    /// Reads the plan of a saved file (see [`SavedPlan`]).
    pub fn from_saved(text: &str) -> Result<Self, PlanLoadError> {
        SavedPlan::from_text(text).map(|saved| saved.plan)
    }

    /// The plan as a saved file that records no configuration paths.
    pub fn to_saved(&self) -> Result<String, serde_json::Error> {
        saved_text(self, &[])
    }
}

/// The text of a saved plan recording `configuration`.
pub fn saved_text(plan: &Plan, configuration: &[PathBuf]) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    render::write_saved_json(plan, configuration, &mut out).map_err(serde_json::Error::io)?;
    // serde_json writes UTF-8.
    Ok(String::from_utf8_lossy(&out).into_owned())
}
