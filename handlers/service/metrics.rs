//! Counters of what the service did and skipped, for health and metrics views.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// One monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The service's counters since the process started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Device reports applied to a rollout.
    pub reports_applied: Counter,
    /// Twin changes that were not about Device Update, or from devices in no rollout.
    pub ordinary_traffic: Counter,
    /// Maintenance events for configurations no active rollout names.
    pub maintenance_skipped: Counter,
    /// Effects carried out.
    pub effects_executed: Counter,
    /// Effects that failed and wait to be retried.
    pub effects_deferred: Counter,
    /// Dead letters kept.
    pub dead_letters: Counter,
    /// Dead letters deleted by the retention (too old, or past the most kept).
    pub dead_letters_pruned: Counter,
    /// Conditional writes that lost to another writer and were redone.
    pub conflicts_retried: Counter,
    /// Finished devices read from Device Update's deployment status.
    pub devices_polled: Counter,
    /// Commits that carried device reports (several invocations' reports share one when
    /// they queue for the same rollout).
    pub report_commits: Counter,
}

/// A snapshot for JSON views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    /// See [`Metrics::reports_applied`].
    pub reports_applied: u64,
    /// See [`Metrics::ordinary_traffic`].
    pub ordinary_traffic: u64,
    /// See [`Metrics::maintenance_skipped`].
    pub maintenance_skipped: u64,
    /// See [`Metrics::effects_executed`].
    pub effects_executed: u64,
    /// See [`Metrics::effects_deferred`].
    pub effects_deferred: u64,
    /// See [`Metrics::dead_letters`].
    pub dead_letters: u64,
    /// See [`Metrics::dead_letters_pruned`].
    pub dead_letters_pruned: u64,
    /// See [`Metrics::conflicts_retried`].
    pub conflicts_retried: u64,
    /// See [`Metrics::devices_polled`].
    pub devices_polled: u64,
    /// See [`Metrics::report_commits`].
    pub report_commits: u64,
}

impl Metrics {
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            reports_applied: self.reports_applied.get(),
            ordinary_traffic: self.ordinary_traffic.get(),
            maintenance_skipped: self.maintenance_skipped.get(),
            effects_executed: self.effects_executed.get(),
            effects_deferred: self.effects_deferred.get(),
            dead_letters: self.dead_letters.get(),
            dead_letters_pruned: self.dead_letters_pruned.get(),
            conflicts_retried: self.conflicts_retried.get(),
            devices_polled: self.devices_polled.get(),
            report_commits: self.report_commits.get(),
        }
    }
}
