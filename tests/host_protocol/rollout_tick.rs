//! `RolloutTick`: timer payloads over HTTP.

use crate::support::{fixture, reference, spawn_app};
use chrono::{TimeZone, Utc};
use patchwave::decode::timer::TimerTick;
use patchwave::inputs::TriggerInput;
use serde_json::json;

async fn tick_of(envelope: &serde_json::Value) -> TimerTick {
    let app = spawn_app().await;
    let response = app.invoke_ok("RolloutTick", envelope).await;
    assert_eq!(response["ReturnValue"]["status"], "ok", "{response}");
    match app.inputs().as_slice() {
        [TriggerInput::Tick(tick)] => tick.clone(),
        other => panic!("expected one tick, got {other:?}"),
    }
}

#[tokio::test]
async fn observed_timer_payload() {
    let tick = tick_of(&reference("functions-host/timer-request.json")).await;
    assert!(!tick.is_past_due);
    assert_eq!(tick.adjust_for_dst, Some(true));
    let status = tick.schedule_status.expect("schedule status");
    assert_eq!(status.last, None, "0001-01-01 means never");
    assert_eq!(
        status.next,
        Utc.with_ymd_and_hms(2024, 11, 30, 14, 45, 51).single()
    );
    assert_eq!(
        status.last_updated.map(|t| t.timestamp()),
        Some(1_732_977_830)
    );
    assert_eq!(
        tick.invoked_at.map(|t| t.timestamp_micros()),
        Some(1_732_977_830_462_390)
    );
    assert_eq!(tick.retry, None);
}

#[tokio::test]
async fn past_due_timer_with_retry_context() {
    let tick = tick_of(&fixture("timer-request-with-retrycontext.json")).await;
    assert!(tick.is_past_due);
    let retry = tick.retry.expect("retry context");
    assert_eq!((retry.retry_count, retry.max_retry_count), (0, 2));
    assert_eq!(
        tick.invoked_at.map(|t| t.timestamp_millis()),
        Some(1_732_977_900_500)
    );
    assert_eq!(
        tick.schedule_status
            .and_then(|s| s.last)
            .map(|t| t.timestamp()),
        Some(1_732_977_840)
    );
}

#[tokio::test]
async fn timer_without_monitor_and_with_string_encoded_info() {
    let info =
        json!({"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": "True"});
    let envelope = json!({"Data": {"tick": info.to_string()}, "Metadata": {"sys": {"UtcNow": "2026-11-23T10:00:00Z"}}});
    let tick = tick_of(&envelope).await;
    assert!(tick.is_past_due);
    assert_eq!(tick.schedule_status, None);
    assert_eq!(
        tick.invoked_at,
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).single()
    );
}

#[tokio::test]
async fn a_timer_payload_that_is_not_timer_info_is_named() {
    let app = spawn_app().await;
    let envelope = json!({"Data": {"tick": {"IsPastDue": 3}}});
    let (status, response) = app.invoke("RolloutTick", envelope.to_string()).await;
    assert_eq!(status, 200);
    let error = response["ReturnValue"]["error"].as_str().expect("error");
    assert!(error.contains("IsPastDue is not a boolean"), "{error}");
    assert!(app.inputs().is_empty());
}
