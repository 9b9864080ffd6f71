//! When Device Update first counted more finished devices in a deployment than their reports
//! told: only a gap that outlasts [`GRACE`] is filled in from Device Update's device lists,
//! so reports still on their way through IoT Hub and Event Hubs are not taken for missed
//! ones (and the decision log is not filled with reconciliations of reports a second late).
//! Kept in memory: after a restart a gap is noticed again on the next tick.

use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a gap must last before the devices behind it are listed (the timer runs every
/// minute in Azure, so there this is "still there on the next tick").
pub const GRACE: Duration = Duration::seconds(15);

/// First sighting of an open gap, per deployment.
#[derive(Default)]
pub struct ReportGaps {
    since: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl ReportGaps {
    /// Whether the deployment's gap has lasted [`GRACE`] by `now`.
    pub fn overdue(&self, deployment: &str, now: DateTime<Utc>) -> bool {
        self.lock()
            .get(deployment)
            .is_some_and(|since| now - *since >= GRACE)
    }

    /// Records what the latest poll saw: an open gap keeps (or starts) its first sighting;
    /// a closed or just-filled gap is forgotten.
    pub fn note(&self, deployment: &str, open: bool, now: DateTime<Utc>) {
        let mut since = self.lock();
        if open {
            since.entry(deployment.to_string()).or_insert(now);
        } else {
            since.remove(deployment);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DateTime<Utc>>> {
        self.since.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_is_overdue_once_it_lasted_the_grace_and_forgotten_when_closed() {
        let gaps = ReportGaps::default();
        let t0 = DateTime::<Utc>::from_timestamp(1_790_000_000, 0).expect("time");
        assert!(!gaps.overdue("d", t0));
        gaps.note("d", true, t0);
        gaps.note("d", true, t0 + Duration::seconds(10));
        assert!(!gaps.overdue("d", t0 + Duration::seconds(14)));
        assert!(gaps.overdue("d", t0 + GRACE));
        gaps.note("d", false, t0 + GRACE);
        assert!(!gaps.overdue("d", t0 + Duration::hours(1)));
    }
}
