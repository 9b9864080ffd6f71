//! Retry behaviour: 429 waited out per Retry-After, 400 not retried, 500 retried a bounded
//! number of times; errors say whether they are retryable.

use crate::recorder::*;
use patchwave::azure::device_update::DeviceUpdateClient;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

#[tokio::test]
#[allow(clippy::disallowed_methods)] // measures that the client really waited
async fn a_429_with_retry_after_is_waited_out() {
    let recorder = Recorder::start(Arc::new(|_, index| {
        if index == 0 {
            (
                429,
                vec![("Retry-After".into(), "2".into())],
                json!({"error": {"code": "TooManyRequests", "message": "slow down"}}),
            )
        } else {
            ok(json!({"deploymentId": "d"}))
        }
    }))
    .await;
    let client = DeviceUpdateClient::new(client(&recorder, "s"), "blue");
    let started = Instant::now();
    let now = chrono::DateTime::UNIX_EPOCH;
    let update = rollout_core::UpdateId::new("C", "N", "1").expect("id");
    client
        .create_deployment("g", "d", &update, now, None)
        .await
        .expect("second attempt succeeds");
    assert!(
        started.elapsed().as_secs_f64() >= 2.0,
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(recorder.requests().len(), 2);
}

#[tokio::test]
async fn a_400_is_not_retried_and_names_the_error() {
    let recorder = Recorder::start(Arc::new(|_, _| {
        (
            400,
            vec![],
            json!({"error": {"code": "BadRequest", "message": "deploymentId is invalid"}}),
        )
    }))
    .await;
    let client = DeviceUpdateClient::new(client(&recorder, "s"), "blue");
    let update = rollout_core::UpdateId::new("C", "N", "1").expect("id");
    let error = client
        .create_deployment("g", "d", &update, chrono::DateTime::UNIX_EPOCH, None)
        .await
        .expect_err("400");
    assert!(!error.retryable());
    assert_eq!(error.status(), Some(400));
    assert!(
        error
            .to_string()
            .contains("BadRequest: deploymentId is invalid"),
        "{error}"
    );
    assert!(
        !error.to_string().contains("token"),
        "no token in errors: {error}"
    );
    assert_eq!(recorder.requests().len(), 1);
}

#[tokio::test]
async fn a_500_is_retried_a_bounded_number_of_times() {
    let recorder = Recorder::start(Arc::new(|_, _| {
        (
            500,
            vec![],
            json!({"error": {"code": "InternalError", "message": "oops"}}),
        )
    }))
    .await;
    let client = DeviceUpdateClient::new(client(&recorder, "s"), "blue");
    let error = client.delete_deployment("g", "d").await.expect_err("500");
    assert!(error.retryable());
    assert_eq!(
        recorder.requests().len(),
        3,
        "max_attempts of the test policy"
    );
}

#[tokio::test]
async fn a_missing_deployment_counts_as_deleted() {
    let recorder = Recorder::start(Arc::new(|_, _| {
        (
            404,
            vec![],
            json!({"error": {"code": "NotFound", "message": "gone"}}),
        )
    }))
    .await;
    let client = DeviceUpdateClient::new(client(&recorder, "s"), "blue");
    client
        .delete_deployment("g", "d")
        .await
        .expect("404 on delete is fine");
}
