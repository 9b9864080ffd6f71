//! The shell's ports: small traits for what effects need from the outside world, and the
//! clock. Each has a real implementation; tests plug in their own.

use chrono::{DateTime, Utc};
use rollout_core::{Effect, PatchOutcome, PolledDevice, Rollout};

/// What carrying out an effect produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectOutcome {
    /// Done; nothing to report back but success.
    Done,
    /// One page of a group's devices (answer to `FetchGroupMembers`, page by page, so a
    /// million members are never in memory at once). `resume` is the checkpoint that
    /// fetches the next page; `None` on the last (a small group is one page: page 0, no
    /// `resume`).
    MembersPage {
        /// Device ids of this page.
        devices: Vec<String>,
        /// Which page, from 0.
        page: u32,
        /// Checkpoint for the next page.
        resume: Option<String>,
    },
    /// A machine's patch run ended (answer to `InstallPatches`).
    Patched {
        /// Outcome.
        outcome: PatchOutcome,
        /// Counts or error text.
        detail: String,
    },
    /// Still running (a long-running operation); `checkpoint` says where it stands and is
    /// handed back on the next attempt, which resumes instead of starting again.
    InProgress {
        /// Opaque resume point (e.g. the operation's status URL).
        checkpoint: String,
        /// What is happening, for the log.
        note: String,
    },
    /// Failed; `retryable` failures stay in the outbox and are tried again later.
    Failed {
        /// Why.
        error: String,
        /// Whether trying again later may succeed.
        retryable: bool,
    },
}

/// Carries effects out against Azure (Device Update, Resource Manager, IoT Hub, Event Hubs).
#[async_trait::async_trait]
pub trait EffectExecutor: Send + Sync + 'static {
    /// Carries out one effect of `rollout`, resuming from `checkpoint` when an earlier attempt
    /// left one. Must be idempotent: the same effect id may be executed again after a crash.
    async fn execute(
        &self,
        rollout: &Rollout,
        effect: &Effect,
        checkpoint: Option<&str>,
    ) -> EffectOutcome;

    /// What Device Update says of a deployment: the devices it counts as finished, listed
    /// only when it counts more than `known_finished`, and its error when it failed the
    /// deployment. Nothing when this executor has no Device Update to ask.
    async fn poll_deployment(
        &self,
        _group: &str,
        _deployment_id: &str,
        _known_finished: u64,
    ) -> Result<DeploymentPoll, String> {
        Ok(DeploymentPoll::default())
    }
}

/// One read of a deployment's status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentPoll {
    /// The finished devices; `None` when Device Update counts no more than already known.
    pub finished: Option<Vec<PolledDevice>>,
    /// Device Update's error when it failed the deployment (or one of its subgroups).
    pub failure: Option<String>,
    /// How many devices Device Update counts as finished (succeeded or failed).
    pub finished_count: u64,
}

/// Where "now" comes from.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock: where the service's "now" comes from, the time every rollout is
/// stepped at. Protocol code that needs the wall clock for its own sake (token expiry, an
/// absolute `Retry-After`, request signing, the demo's host stand-in) reads it itself, each
/// read marked with an `allow` of clippy's ban.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the clock rules are judged by
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock tests move by hand.
#[derive(Debug)]
pub struct ManualClock {
    now: std::sync::Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock {
            now: std::sync::Mutex::new(now),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut now) = self.now.lock() {
            *now += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.now.lock().map(|now| *now).unwrap_or_default()
    }
}
