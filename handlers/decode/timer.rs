//! The timer trigger's payload for `RolloutTick`: `TimerInfo` and the invocation time.

use crate::host::json::{as_bool, get_loose, kind_of, parse_time, unwrap_encoded};
use crate::host::{EnvelopeError, Invocation, RetryContext};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// Binding name of the `RolloutTick` trigger in function.json.
pub const BINDING: &str = "tick";

/// One timer firing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerTick {
    /// The host fired this occurrence late (e.g. after a restart).
    pub is_past_due: bool,
    /// The schedule monitor's record, when `useMonitor` is on.
    pub schedule_status: Option<ScheduleStatus>,
    /// Whether the schedule adjusts for daylight saving time.
    pub adjust_for_dst: Option<bool>,
    /// When the host invoked the function (`Metadata.sys.UtcNow`).
    pub invoked_at: Option<DateTime<Utc>>,
    /// The retry context, when the function has a retry policy.
    pub retry: Option<RetryContext>,
}

/// The schedule monitor's view of the timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// Last occurrence; `None` on the first run (`0001-01-01T00:00:00`).
    pub last: Option<DateTime<Utc>>,
    /// Next occurrence.
    pub next: Option<DateTime<Utc>>,
    /// When the monitor last updated this record.
    pub last_updated: Option<DateTime<Utc>>,
}

/// Decodes a `RolloutTick` invocation.
pub fn decode_timer(invocation: &Invocation) -> Result<TimerTick, EnvelopeError> {
    let bad = |problem: String| EnvelopeError::BadBinding {
        binding: BINDING.into(),
        problem,
    };
    let info = match unwrap_encoded(invocation.binding(BINDING)?) {
        Value::Object(info) => info,
        other => {
            return Err(bad(format!(
                "must be a TimerInfo object, found {}",
                kind_of(&other)
            )))
        }
    };
    let is_past_due = match get_loose(&info, "IsPastDue") {
        None | Some(Value::Null) => false,
        Some(value) => {
            as_bool(value).ok_or_else(|| bad(format!("IsPastDue is not a boolean: {value}")))?
        }
    };
    let schedule_status = match get_loose(&info, "ScheduleStatus").map(unwrap_encoded) {
        None | Some(Value::Null) => None,
        Some(Value::Object(status)) => Some(schedule_status(&status).map_err(bad)?),
        Some(other) => {
            return Err(bad(format!(
                "ScheduleStatus must be an object, found {}",
                kind_of(&other)
            )))
        }
    };
    let adjust_for_dst = get_loose(&info, "Schedule")
        .map(unwrap_encoded)
        .and_then(|schedule| {
            schedule
                .as_object()
                .and_then(|s| get_loose(s, "AdjustForDST"))
                .and_then(as_bool)
        });
    Ok(TimerTick {
        is_past_due,
        schedule_status,
        adjust_for_dst,
        invoked_at: invocation.invoked_at(),
        retry: invocation.retry_context(),
    })
}

fn schedule_status(status: &Map<String, Value>) -> Result<ScheduleStatus, String> {
    let time = |key: &str| -> Result<Option<DateTime<Utc>>, String> {
        match get_loose(status, key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => parse_time(value)
                .map(|t| Some(t).filter(|t| t.timestamp() > MIN_MEANINGFUL_TIME))
                .map_err(|e| format!("ScheduleStatus.{key}: {e}")),
        }
    };
    Ok(ScheduleStatus {
        last: time("Last")?,
        next: time("Next")?,
        last_updated: time("LastUpdated")?,
    })
}

/// .NET's `DateTime.MinValue` (year 1) marks "never": anything before 1970 is treated so.
const MIN_MEANINGFUL_TIME: i64 = 0;
