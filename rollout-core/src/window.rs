//! Maintenance windows: on which days and between which local times waves may start.

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A weekly window in a time zone, e.g. Mon–Fri 01:00–05:00 Europe/Berlin.
///
/// A window whose end is not after its start runs past midnight; it belongs to the day it
/// opens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Window {
    /// Days the window opens on: `Mon` … `Sun`.
    pub days: Vec<String>,
    /// Opening time, `HH:MM`, local.
    pub start: String,
    /// Closing time, `HH:MM`, local.
    pub end: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: String,
}

impl Window {
    /// Every problem with the window's fields.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.days.is_empty() {
            problems.push("days must name at least one day".into());
        }
        for (index, day) in self.days.iter().enumerate() {
            if parse_day(day).is_none() {
                problems.push(format!(
                    "days[{index}] `{day}` is not a day (Mon, Tue, … Sun)"
                ));
            }
        }
        let start = parse_time(&self.start);
        let end = parse_time(&self.end);
        if start.is_none() {
            problems.push(format!("start `{}` is not a time HH:MM", self.start));
        }
        if end.is_none() {
            problems.push(format!("end `{}` is not a time HH:MM", self.end));
        }
        if start.is_some() && start == end {
            problems.push("start and end are equal: the window would never be open".into());
        }
        if self.time_zone.parse::<Tz>().is_err() {
            problems.push(format!(
                "timeZone `{}` is not an IANA time zone",
                self.time_zone
            ));
        }
        problems
    }

    /// Whether `now` is inside the window. An invalid window is never open.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let (Some(start), Some(end), Ok(zone)) = (
            parse_time(&self.start),
            parse_time(&self.end),
            self.time_zone.parse::<Tz>(),
        ) else {
            return false;
        };
        let local = now.with_timezone(&zone);
        let time = local.time();
        let opens_on = |day: Weekday| self.days.iter().any(|d| parse_day(d) == Some(day));
        if start < end {
            opens_on(local.weekday()) && time >= start && time < end
        } else {
            (time >= start && opens_on(local.weekday()))
                || (time < end && opens_on((local - Duration::days(1)).weekday()))
        }
    }

    /// A readable form for decisions: `Mon,Tue 01:00–05:00 Europe/Berlin`.
    pub fn describe(&self) -> String {
        format!(
            "{} {}–{} {}",
            self.days.join(","),
            self.start,
            self.end,
            self.time_zone
        )
    }
}

fn parse_day(day: &str) -> Option<Weekday> {
    let lower = day.trim().to_ascii_lowercase();
    let prefix = lower.get(..3)?;
    Some(match prefix {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn parse_time(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn window(days: &[&str], start: &str, end: &str, zone: &str) -> Window {
        Window {
            days: days.iter().map(|d| d.to_string()).collect(),
            start: start.into(),
            end: end.into(),
            time_zone: zone.into(),
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn window_is_judged_in_its_own_time_zone() {
        let berlin = window(
            &["Mon", "Tue", "Wed", "Thu", "Fri"],
            "01:00",
            "05:00",
            "Europe/Berlin",
        );
        // Monday 2026-11-23 00:30 UTC = 01:30 in Berlin (CET, UTC+1)
        assert!(berlin.is_open(utc(2026, 11, 23, 0, 30)));
        // 04:30 UTC = 05:30 Berlin: closed
        assert!(!berlin.is_open(utc(2026, 11, 23, 4, 30)));
        // Saturday 2026-11-28 01:30 Berlin: not a window day
        assert!(!berlin.is_open(utc(2026, 11, 28, 0, 30)));
        // summer time: 2026-07-06 (Mon) 23:30 UTC = Tue 01:30 CEST
        assert!(berlin.is_open(utc(2026, 7, 6, 23, 30)));
    }

    #[test]
    fn window_past_midnight_belongs_to_its_opening_day() {
        let night = window(&["Fri"], "22:00", "02:00", "UTC");
        assert!(night.is_open(utc(2026, 11, 27, 23, 0))); // Fri 23:00
        assert!(night.is_open(utc(2026, 11, 28, 1, 0))); // Sat 01:00, opened Friday
        assert!(!night.is_open(utc(2026, 11, 29, 1, 0))); // Sun 01:00, Saturday has no window
    }

    #[test]
    fn bad_windows_list_every_problem() {
        let bad = window(&["Funday"], "25:00", "5pm", "Mars/Olympus");
        let problems = bad.problems();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(!bad.is_open(utc(2026, 11, 23, 12, 0)));
    }
}
