//! The alert gate: a `Fired` Azure Monitor alert of a rule the plan names fails the wave that
//! is deploying or soaking (also while an operator paused it there); every other alert is
//! recorded in the audit trail only. A delivery (alert id and condition) is applied once.

use crate::alert_rules::same_rule;
use crate::decision_kind::DecisionKind;
use crate::effect::Effect;
use crate::input::AlertInput;
use crate::rollout::Rollout;
use crate::state::{PauseCause, RolloutState};
use chrono::SecondsFormat;

impl Rollout {
    /// Applies an alert: fails the current wave, or records it; a redelivery is a no-op.
    pub(super) fn on_alert(&mut self, alert: &AlertInput, effects: &mut Vec<Effect>) {
        if !self.applied.insert(alert_key(alert)) {
            return;
        }
        let named = self
            .plan
            .alert_rules
            .iter()
            .any(|rule| same_rule(rule, &alert.rule));
        let what = describe(alert);
        let why = match (alert.fired, named, self.wave_under_alert_gate()) {
            (true, true, Some(index)) => {
                let reason = format!("wave {}: {what}", self.wave_name(index));
                self.fail_wave(index, reason, effects);
                return;
            }
            (false, _, _) => "recorded only".to_string(),
            (true, false, _) => "not a rule of this rollout's alertRules; recorded only".into(),
            (true, true, None) => format!(
                "no wave is deploying or soaking (the rollout is {:?}); recorded only",
                self.state
            ),
        };
        self.decide(
            effects,
            DecisionKind::AlertRecorded,
            None,
            None,
            format!("{what}: {why}"),
        );
    }

    /// The wave a fired alert fails: the current one while it deploys or soaks, or while an
    /// operator paused the rollout there.
    fn wave_under_alert_gate(&self) -> Option<usize> {
        let gated = match (self.state, &self.pause) {
            (RolloutState::Deploying | RolloutState::Soaking, _) => true,
            (RolloutState::Paused, Some(pause)) => {
                pause.cause == PauseCause::Operator
                    && matches!(pause.from, RolloutState::Deploying | RolloutState::Soaking)
            }
            _ => false,
        };
        Some(self.current_wave).filter(|index| gated && *index < self.waves.len())
    }
}

/// The key a delivery is remembered by in `applied`: `alert:{alertId}:{Fired|Resolved}`.
fn alert_key(alert: &AlertInput) -> String {
    let condition = if alert.fired { "Fired" } else { "Resolved" };
    format!("alert:{}:{condition}", alert.alert_id)
}

/// `alert hub-connected-devices-low fired at 2026-11-29T08:29:58Z`.
fn describe(alert: &AlertInput) -> String {
    let condition = if alert.fired { "fired" } else { "resolved" };
    match alert.at {
        Some(at) => format!(
            "alert {} {condition} at {}",
            alert.rule,
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        None => format!("alert {} {condition}", alert.rule),
    }
}
