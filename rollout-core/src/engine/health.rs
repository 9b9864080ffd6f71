//! Health gates: a device of a health-gated wave that installed the target is observed for the
//! gate's `observeMinutes`; disconnected longer than `maxDisconnectedMinutes` within that time
//! (measured from the connection events' own times; `0`: any disconnection), it is unhealthy,
//! which counts as a failure. No device is visited on a tick: the wave keeps its healthy
//! devices by the minute they installed and its disconnected ones by id ([`HealthWatch`]).

use crate::connection::ConnectionReport;
use crate::decision_kind::DecisionKind;
use crate::effect::Effect;
use crate::plan::HealthGate;
use crate::rollout::Rollout;
use crate::state::{
    ConnectionState, DeviceRecord, Disconnection, HealthWatch, Outcome, WaveStatus,
};
use crate::step::WorkingSet;
use chrono::{DateTime, Duration, Utc};

/// The Unix minute of `at`: healthy devices are kept by it.
fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

fn minutes(n: u32) -> Duration {
    Duration::minutes(i64::from(n))
}

impl Rollout {
    /// The gate of wave `index`, while that wave is being judged (deploying or soaking).
    fn watched_gate(&self, index: usize) -> Option<HealthGate> {
        let (plan, progress) = self.wave(index)?;
        let judged = matches!(progress.status, WaveStatus::Deploying | WaveStatus::Soaking);
        plan.health_gate.filter(|_| judged)
    }

    fn watch(&mut self, index: usize) -> &mut HealthWatch {
        self.waves[index]
            .health
            .get_or_insert_with(HealthWatch::default)
    }

    /// A device's forward outcome changed from `before` (a report or a poll): a device that
    /// installed starts its observation at `at`; one that no longer counts as installed
    /// leaves it.
    pub(super) fn note_forward_change(
        &mut self,
        device: &str,
        record: &mut DeviceRecord,
        before: Outcome,
        at: DateTime<Utc>,
    ) {
        let index = record.wave as usize;
        if self.watched_gate(index).is_none() || before == record.forward {
            return;
        }
        if record.forward == Outcome::Succeeded {
            record.succeeded_at = Some(at);
            *self
                .watch(index)
                .healthy_by_minute
                .entry(minute_of(at))
                .or_default() += 1;
        } else if before == Outcome::Succeeded {
            let watch = self.watch(index);
            let was_disconnected = watch.disconnected.remove(device).is_some();
            if let (Some(since), false) = (record.succeeded_at, was_disconnected) {
                remove_healthy(watch, since);
            }
        }
    }

    /// IoT Hub says a device connected or disconnected. The connection with the highest
    /// sequence number is the device's; an older event still tells of a disconnection that
    /// lasted until the newer connect.
    pub(super) fn on_device_connection<V>(
        &mut self,
        records: &mut WorkingSet<V>,
        report: &ConnectionReport,
    ) {
        let Some(record) = records.get_mut(report.device.as_str()) else {
            self.ignored_reports += 1;
            return;
        };
        let previous = record.connection;
        let newer = previous.is_none_or(|c| report.sequence > c.sequence);
        if newer {
            record.connection = Some(ConnectionState {
                connected: report.connected,
                at: report.at,
                sequence: report.sequence,
            });
        }
        let index = record.wave as usize;
        let (Some(gate), Some(installed)) = (self.watched_gate(index), record.succeeded_at) else {
            return;
        };
        if record.forward != Outcome::Succeeded {
            return;
        }
        let observed =
            report.at >= installed && report.at < installed + minutes(gate.observe_minutes);
        let device = report.device.as_str();
        match (newer, report.connected) {
            (true, false) if observed => self.disconnected(index, device, record, gate, report.at),
            (true, true) => self.reconnected(index, device, record, gate, report.at),
            (false, false) if observed => {
                // a disconnection delivered after the connect that ended it
                let ended = previous.filter(|c| c.connected && c.at > report.at);
                if let Some(back) = ended {
                    let lasted = back.at - report.at;
                    if gate.max_disconnected_minutes == 0
                        || lasted > minutes(gate.max_disconnected_minutes)
                    {
                        remove_healthy(self.watch(index), installed);
                        self.count_unhealthy(index, record);
                    }
                }
            }
            _ => {}
        }
    }

    fn disconnected(
        &mut self,
        index: usize,
        device: &str,
        record: &mut DeviceRecord,
        gate: HealthGate,
        since: DateTime<Utc>,
    ) {
        let Some(installed) = record.succeeded_at else {
            return;
        };
        let watch = self.watch(index);
        if watch.disconnected.contains_key(device) {
            return;
        }
        remove_healthy(watch, installed);
        if gate.max_disconnected_minutes == 0 {
            self.count_unhealthy(index, record);
            return;
        }
        let entry = Disconnection {
            since,
            succeeded_at: installed,
            counted: false,
        };
        self.watch(index).disconnected.insert(device.into(), entry);
    }

    fn reconnected(
        &mut self,
        index: usize,
        device: &str,
        record: &mut DeviceRecord,
        gate: HealthGate,
        at: DateTime<Utc>,
    ) {
        let Some(entry) = self.watch(index).disconnected.remove(device) else {
            return;
        };
        let too_long = at - entry.since > minutes(gate.max_disconnected_minutes);
        match (entry.counted, too_long) {
            // counted unhealthy on a tick, which could not touch the record
            (true, true) => record.forward = Outcome::Unhealthy,
            (false, true) => self.count_unhealthy(index, record),
            (counted, false) => {
                if counted {
                    // a tick counted it before this (late) connect said it came back in time
                    let counts = &mut self.waves[index].counts;
                    counts.unhealthy = counts.unhealthy.saturating_sub(1);
                    counts.succeeded += 1;
                }
                let minute = minute_of(entry.succeeded_at);
                *self
                    .watch(index)
                    .healthy_by_minute
                    .entry(minute)
                    .or_default() += 1;
            }
        }
    }

    fn count_unhealthy(&mut self, index: usize, record: &mut DeviceRecord) {
        record.forward = Outcome::Unhealthy;
        let counts = &mut self.waves[index].counts;
        counts.succeeded = counts.succeeded.saturating_sub(1);
        counts.unhealthy += 1;
    }

    /// Devices still disconnected past the limit are counted unhealthy (their records learn
    /// it with their next event; compliance reads it from the watch). True if any was.
    pub(super) fn judge_disconnections(&mut self, index: usize, effects: &mut Vec<Effect>) -> bool {
        let Some(gate) = self.watched_gate(index) else {
            return false;
        };
        let (now, limit) = (self.now, minutes(gate.max_disconnected_minutes));
        let Some(watch) = self.waves[index].health.as_mut() else {
            return false;
        };
        let mut found = 0u64;
        for entry in watch.disconnected.values_mut() {
            if !entry.counted && now - entry.since > limit {
                entry.counted = true;
                found += 1;
            }
        }
        if found == 0 {
            return false;
        }
        let counts = &mut self.waves[index].counts;
        counts.succeeded = counts.succeeded.saturating_sub(found);
        counts.unhealthy += found;
        let reason = format!(
            "wave {}: {found} device(s) disconnected for more than {} min within {} min of installing; unhealthy",
            self.wave_name(index),
            gate.max_disconnected_minutes,
            gate.observe_minutes
        );
        self.decide(
            effects,
            DecisionKind::WaveUnhealthy,
            Some(index),
            None,
            reason,
        );
        true
    }

    /// Devices of wave `index` that finished their observation healthy by now.
    pub(super) fn observed_healthy(&self, index: usize, gate: HealthGate) -> u64 {
        let Some(watch) = self.waves.get(index).and_then(|w| w.health.as_ref()) else {
            return 0;
        };
        let last = minute_of(self.now) - i64::from(gate.observe_minutes);
        // a minute's devices are all observed once the minute after it plus the observation
        // has passed
        watch
            .healthy_by_minute
            .range(..last)
            .map(|(_, count)| count)
            .sum()
    }

    /// Whether a device counts as unhealthy although its record does not say so yet (counted
    /// on a tick while disconnected).
    pub fn counted_unhealthy(&self, index: usize, device: &str) -> bool {
        self.waves
            .get(index)
            .and_then(|w| w.health.as_ref())
            .and_then(|h| h.disconnected.get(device))
            .is_some_and(|entry| entry.counted)
    }
}

fn remove_healthy(watch: &mut HealthWatch, installed: DateTime<Utc>) {
    let minute = minute_of(installed);
    if let Some(count) = watch.healthy_by_minute.get_mut(&minute) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            watch.healthy_by_minute.remove(&minute);
        }
    }
}
