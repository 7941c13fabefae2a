//! Phase: the safety checks over the whole plan. Thresholds (octoDNS-style: too large a share of
//! the managed environments changed at once) and disruptions (steps that stop active workers).

use super::context::Planner;
use crate::desired::Threshold;
use crate::plan::disruption::{Disruption, DisruptionPolicy};
use crate::plan::disruption_check;
use crate::plan::error::ThresholdKind;
use crate::plan::model::{Action, Refusal, SwapPart};

impl<'a> Planner<'a> {
    /// The steps that stop active workers: refused, warned about or allowed, as asked.
    pub(super) fn check_disruptions(&mut self) -> Vec<Disruption> {
        let disruptions = disruption_check::disruptions_by_id(&self.steps, &self.live_by_id);
        match self.options.disruption {
            DisruptionPolicy::Refuse => {
                self.errors.extend(disruption_check::refusals(&disruptions));
            }
            DisruptionPolicy::Warn => {
                self.warnings
                    .extend(disruption_check::warnings(&disruptions));
            }
            DisruptionPolicy::Allow => {}
        }
        disruptions
    }

    /// octoDNS-style safety: too large a share of managed environments changed at once. The plan
    /// is still made, so it can be reviewed; it records the refusal.
    pub(super) fn check_thresholds(&mut self) {
        if self.options.force {
            return;
        }
        let managed = self.state.resources.len();
        let count = |actions: &[Action]| {
            self.steps
                .iter()
                .filter(|step| step.swap != Some(SwapPart::ToTemporary))
                .filter(|step| actions.contains(&step.action))
                .count()
        };
        let checks = [
            (
                ThresholdKind::Delete,
                count(&[Action::Delete]),
                self.desired.options.delete_threshold,
            ),
            (
                ThresholdKind::Update,
                count(&[Action::Update, Action::Rename]),
                self.desired.options.update_threshold,
            ),
        ];
        for (kind, count, threshold) in checks {
            if exceeds(threshold, count, managed) {
                self.refusals.push(Refusal::Threshold {
                    threshold: kind,
                    count,
                    managed,
                    max_fraction: threshold.max_fraction,
                });
            }
        }
    }
}

pub(super) fn exceeds(threshold: Threshold, count: usize, managed: usize) -> bool {
    // Counts are small; f64 holds them exactly.
    managed >= threshold.min_existing
        && managed > 0
        && count as f64 > threshold.max_fraction * managed as f64
}
