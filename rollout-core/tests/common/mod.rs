//! Scenario helpers shared by the rule tests and the property tests.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use rollout_core::*;

pub fn t0() -> DateTime<Utc> {
    // a Monday, 02:00 in Berlin
    Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 0)
        .single()
        .expect("time")
}

pub fn minutes(m: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(m)
}

pub fn update(version: &str) -> UpdateId {
    UpdateId::new("Contoso", "Gateway", version).expect("id")
}

pub fn wave(name: &str, success: f64, failure: f64, min: u32, on_failure: WaveFailure) -> WavePlan {
    WavePlan {
        name: name.into(),
        device_group: name.into(),
        success_threshold_percent: success,
        failure_threshold_percent: failure,
        min_devices_judged: min,
        soak_minutes: 30,
        device_timeout_minutes: 120,
        approval_required: false,
        on_failure,
        health_gate: None,
    }
}

pub fn plan(waves: Vec<WavePlan>) -> RolloutPlan {
    RolloutPlan {
        name: "CVE-2026-1234 gateway firmware".into(),
        update: update("2.4.1"),
        rollback_update: update("2.4.0"),
        infrastructure: None,
        waves,
        window: None,
        allow_self_approval: false,
        rollback: None,
        alert_rules: Vec::new(),
    }
}

pub fn devices(wave: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{wave}-d{i}")).collect()
}

/// A rollout plus everything it emitted and decided, driven step by step, with every
/// device record it made (a shell that loads them all).
pub struct Scenario {
    pub rollout: Rollout,
    pub devices: WorkingSet,
    pub effects: Vec<Effect>,
    pub decisions: Vec<Decision>,
    pub version: u64,
}

impl Scenario {
    pub fn new(plan: RolloutPlan) -> Self {
        let id = RolloutId::new("r1");
        let (rollout, step) = Rollout::create(id, plan, "alice", t0()).expect("valid plan");
        Scenario {
            rollout,
            devices: WorkingSet::default(),
            effects: step.effects,
            decisions: step.decisions.into_iter().map(|(_, d)| d).collect(),
            version: 0,
        }
    }

    /// Steps one input; a refused one changes nothing.
    pub fn try_step(&mut self, input: &Input, at: DateTime<Utc>) -> Result<Vec<Effect>, Rejected> {
        let step = self.rollout.step(&mut self.devices, input, at)?;
        self.effects.extend(step.effects.iter().cloned());
        self.decisions
            .extend(step.decisions.into_iter().map(|(_, d)| d));
        Ok(step.effects)
    }

    pub fn step(&mut self, input: Input, at: DateTime<Utc>) -> Vec<Effect> {
        self.try_step(&input, at).expect("accepted")
    }

    pub fn members(&mut self, wave: usize, devices: Vec<String>, at: DateTime<Utc>) -> Vec<Effect> {
        self.step(
            Input::GroupMembers {
                wave,
                devices: devices.into_iter().map(DeviceId::from).collect(),
                page: 0,
                last: true,
            },
            at,
        )
    }

    pub fn report(
        &mut self,
        device: &str,
        agent_state: i64,
        installed: Option<UpdateId>,
        at: DateTime<Utc>,
    ) -> Vec<Effect> {
        self.version += 1;
        let report = agent_report(device, self.version, (agent_state, installed), None, at);
        self.step(Input::DeviceReport(report), at)
    }

    /// A report as an agent writes it: about workflow `workflow`, written at `written`,
    /// applied at `at`.
    pub fn agent(
        &mut self,
        device: &str,
        (agent_state, installed): (i64, Option<UpdateId>),
        (workflow, written): (&str, DateTime<Utc>),
        at: DateTime<Utc>,
    ) -> Vec<Effect> {
        self.version += 1;
        let state = (agent_state, installed);
        let report = agent_report(device, self.version, state, Some(workflow), written);
        self.step(Input::DeviceReport(report), at)
    }

    pub fn succeed(&mut self, device: &str, at: DateTime<Utc>) -> Vec<Effect> {
        let target = self.rollout.plan().update.clone();
        self.report(device, 0, Some(target), at)
    }

    pub fn fail(&mut self, device: &str, at: DateTime<Utc>) -> Vec<Effect> {
        self.report(device, 255, None, at)
    }

    pub fn roll_back(&mut self, device: &str, at: DateTime<Utc>) -> Vec<Effect> {
        let target = self.rollout.plan().rollback_update.clone();
        self.report(device, 0, Some(target), at)
    }

    pub fn command(
        &mut self,
        id: &str,
        action: CommandAction,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<Effect>, Rejected> {
        let command = Command {
            id: id.into(),
            action,
            actor: actor.into(),
            reason: "test".into(),
        };
        self.try_step(&Input::Operator(command), at)
    }

    pub fn state(&self) -> RolloutState {
        self.rollout.state()
    }

    pub fn last_reason(&self, kind: &str) -> String {
        self.decisions
            .iter()
            .rev()
            .find(|d| d.kind == kind)
            .map(|d| d.reason.clone())
            .unwrap_or_else(|| panic!("no decision {kind}: {:#?}", self.decisions))
    }
}

/// A report of `device` at twin version `version`, with the result code its state implies.
pub fn agent_report(
    device: &str,
    version: u64,
    (agent_state, installed): (i64, Option<UpdateId>),
    workflow: Option<&str>,
    written: DateTime<Utc>,
) -> DeviceReport {
    DeviceReport {
        device: device.into(),
        twin_version: version,
        agent_state,
        result_code: Some(match agent_state {
            0 => 700,
            255 => 0,
            _ => 400,
        }),
        installed_update: installed,
        workflow: workflow.map(str::to_string),
        reported_at: Some(written),
    }
}

pub fn kinds(effects: &[Effect]) -> Vec<&'static str> {
    effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::FetchGroupMembers { .. } => Some("fetch"),
            EffectKind::CreateDeployment { .. } => Some("create"),
            EffectKind::CreateRollbackDeployment { .. } => Some("create-rollback"),
            EffectKind::CancelDeployment { .. } => Some("cancel"),
            EffectKind::DeleteDeployment { .. } => Some("delete"),
            EffectKind::InstallPatches { .. } => Some("install-patches"),
            EffectKind::CancelMaintenanceRun { .. } => Some("cancel-run"),
            EffectKind::PublishEvent { .. } => None,
        })
        .collect()
}
