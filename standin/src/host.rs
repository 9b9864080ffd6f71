//! Playing the Functions host toward the handler: twin change notifications go to
//! `{handler}/TwinChanges` as `eventHubTrigger` (`cardinality: many`, `dataType: string`,
//! binding `events`) batches, maintenance events to `{handler}/PatchEvents` as
//! `eventGridTrigger` (binding `event`) invocations. A delivery the handler does not answer
//! 2xx is retried with bounded backoff, so nothing is lost while the handler restarts.

use super::http::azure_time;
use super::rng::fnv1a;
use super::world::{HubMessage, State};
use super::{StandinConfig, World};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::sync::Arc;

/// Host version the stand-in claims in its headers.
const HOST_VERSION: &str = "4.1037.1.1";
/// Event hub the twin changes come from.
const EVENT_HUB: &str = "twin-changes";
/// Consumer group of the TwinChanges trigger.
const CONSUMER_GROUP: &str = "patchwave";

/// Queues a twin change notification of `device` in its partition; returns the partition.
pub(super) fn enqueue_twin_change(
    state: &mut State,
    config: &StandinConfig,
    device: &str,
    body: &str,
    now: DateTime<Utc>,
) -> usize {
    let partitions = state.twin_queues.len().max(1);
    let partition = (fnv1a(device) % partitions as u64) as usize;
    let sequence = state.next_sequence;
    state.next_sequence += 1;
    let offset = sequence * 512;
    let hub = &config.hub_name;
    let enqueued = azure_time(now);
    let message = HubMessage {
        body: body.to_string(),
        application: json!({
            "hubName": hub, "deviceId": device, "operationTimestamp": enqueued,
            "iothub-message-schema": "twinChangeNotification", "opType": "updateTwin"
        }),
        system: json!({
            "content-type": "application/json", "content-encoding": "utf-8",
            "correlation-id": format!("{:011x}", fnv1a(&format!("{device}/{sequence}")) >> 20),
            "user-id": hub,
            "iothub-connection-device-id": device,
            "iothub-enqueuedtime": enqueued,
            "iothub-message-source": "twinChangeEvents",
            "x-opt-sequence-number": sequence,
            "x-opt-offset": offset,
            "x-opt-enqueued-time": now.to_rfc3339(),
            "SequenceNumber": sequence,
            "Offset": offset,
            "OffsetString": offset.to_string(),
            "PartitionKey": null,
            "EnqueuedTimeUtc": host_time(now),
        }),
        sequence,
        enqueued: now,
    };
    if let Some(queue) = state.twin_queues.get_mut(partition) {
        queue.push_back(message);
    }
    partition
}

/// Queues an Event Grid event for `PatchEvents`.
pub(super) fn enqueue_event(world: &World, event: Value) {
    {
        let mut state = world.lock();
        state.events_produced.push(event.clone());
        state.events.push_back(event);
    }
    world.event_wake.notify_one();
}

/// `EnqueuedTimeUtc` as the host writes it: no offset.
fn host_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
}

fn sys(function: &str, now: DateTime<Utc>, guid: String) -> Value {
    json!({"MethodName": function, "UtcNow": azure_time(now), "RandGuid": guid})
}

/// The invocation body for a batch of twin change notifications from `partition`.
pub(super) fn twin_envelope(
    world: &World,
    partition: usize,
    batch: &[HubMessage],
    retry: u32,
) -> Value {
    let encode = |values: Vec<Value>| Value::String(Value::Array(values).to_string());
    let column = |f: &dyn Fn(&HubMessage) -> Value| encode(batch.iter().map(f).collect());
    let context = json!({
        "IsCheckpointingAfterInvocation": true,
        "FullyQualifiedNamespace": format!("{}-ns.servicebus.windows.net", world.config.hub_name),
        "EventHubName": EVENT_HUB, "ConsumerGroup": CONSUMER_GROUP,
        "PartitionId": partition.to_string(),
    });
    let guid = world.lock().rng.guid();
    json!({
        "Data": {"events": column(&|m| Value::String(m.body.clone()))},
        "Metadata": {
            "TriggerPartitionContext": context.clone(),
            "PartitionContext": context,
            "PartitionKeyArray": column(&|_| Value::Null),
            "OffsetArray": column(&|m| json!((m.sequence * 512).to_string())),
            "OffsetStringArray": column(&|m| json!((m.sequence * 512).to_string())),
            "SequenceNumberArray": column(&|m| json!(m.sequence)),
            "EnqueuedTimeUtcArray": column(&|m| json!(host_time(m.enqueued))),
            "PropertiesArray": column(&|m| m.application.clone()),
            "SystemPropertiesArray": column(&|m| m.system.clone()),
            "RetryContext": {"RetryCount": retry, "MaxRetryCount": -1, "Exception": null},
            "sys": sys("TwinChanges", world.now(), guid),
        }
    })
}

/// The invocation body for one Event Grid event: the indented event JSON as a JSON string
/// inside a JSON string, and the top-level fields in the metadata.
pub(super) fn event_envelope(world: &World, event: &Value) -> Value {
    let indented = serde_json::to_string_pretty(event).unwrap_or_else(|_| event.to_string());
    let encoded = serde_json::to_string(&indented).unwrap_or_default();
    let mut metadata = serde_json::Map::new();
    if let Value::Object(fields) = event {
        for (key, value) in fields {
            let value = match (key.as_str(), value) {
                ("data", data) => data.clone(),
                ("eventTime", Value::String(time)) => {
                    let time = DateTime::parse_from_rfc3339(time)
                        .map(|t| t.format("%m/%d/%Y %H:%M:%S").to_string())
                        .unwrap_or_else(|_| time.clone());
                    Value::String(Value::String(time).to_string())
                }
                (_, Value::String(text)) => Value::String(Value::String(text.clone()).to_string()),
                (_, other) => Value::String(other.to_string()),
            };
            metadata.insert(key.clone(), value);
        }
    }
    let guid = world.lock().rng.guid();
    metadata.insert("sys".into(), sys("PatchEvents", world.now(), guid));
    json!({"Data": {"event": encoded}, "Metadata": metadata})
}

/// Starts one delivery loop per Event Hubs partition and one for Event Grid.
pub(super) fn spawn_delivery(world: &Arc<World>) {
    for partition in 0..world.twin_wake.len() {
        let lane = world.clone();
        world.spawn(async move { twin_lane(lane, partition).await });
    }
    let lane = world.clone();
    world.spawn(async move { event_lane(lane).await });
}

async fn twin_lane(world: Arc<World>, partition: usize) {
    let Some(wake) = world.twin_wake.get(partition) else {
        return;
    };
    loop {
        let ready = {
            let state = world.lock();
            state.handler_url.is_some()
                && state
                    .twin_queues
                    .get(partition)
                    .is_some_and(|q| !q.is_empty())
        };
        if !ready {
            wake.notified().await;
            continue;
        }
        let full = world.lock().twin_queues[partition].len() >= world.config.batch_size;
        if !full {
            tokio::time::sleep(world.config.batch_window).await;
        }
        let batch = {
            let mut state = world.lock();
            let queue = &mut state.twin_queues[partition];
            let take = queue.len().min(world.config.batch_size.max(1));
            let mut batch: Vec<HubMessage> = queue.drain(..take).collect();
            if state.faults.reorder {
                state.rng.shuffle(&mut batch);
            }
            batch
        };
        if batch.is_empty() {
            continue;
        }
        let count = batch.len() as u64;
        deliver(&world, "TwinChanges", |retry| {
            twin_envelope(&world, partition, &batch, retry)
        })
        .await;
        let mut state = world.lock();
        state.stats.twin_batches_delivered += 1;
        state.stats.twin_messages_delivered += count;
    }
}

async fn event_lane(world: Arc<World>) {
    loop {
        let event = {
            let mut state = world.lock();
            if state.handler_url.is_some() {
                state.events.pop_front()
            } else {
                None
            }
        };
        let Some(event) = event else {
            world.event_wake.notified().await;
            continue;
        };
        deliver(&world, "PatchEvents", |_| event_envelope(&world, &event)).await;
        world.lock().stats.events_delivered += 1;
    }
}

/// POSTs an invocation until the handler answers 2xx, waiting longer after each failure (up
/// to the configured maximum). The handler URL is read again before every attempt.
async fn deliver(world: &World, function: &str, envelope: impl Fn(u32) -> Value) {
    let mut backoff = world.config.redelivery_backoff_min;
    let mut attempt = 0u32;
    loop {
        let base = world.handler_url();
        let outcome = match base {
            None => Err("no handler URL".to_string()),
            Some(base) => post(world, &base, function, &envelope(attempt)).await,
        };
        match outcome {
            Ok(()) => return,
            Err(reason) => {
                tracing::warn!(function, attempt, %reason, "delivery failed; retrying");
                world.lock().stats.failed_deliveries += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(world.config.redelivery_backoff_max.max(backoff));
                attempt += 1;
            }
        }
    }
}

async fn post(world: &World, base: &str, function: &str, body: &Value) -> Result<(), String> {
    let invocation_id = world.lock().rng.guid();
    let url = format!("{}/{function}", base.trim_end_matches('/'));
    let response = world
        .http
        .post(&url)
        .header("Content-Type", "application/json; charset=utf-8")
        .header("X-Azure-Functions-HostVersion", HOST_VERSION)
        .header("X-Azure-Functions-InvocationId", invocation_id)
        .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("POST {url}: status {}", response.status()))
    }
}

/// Takes every queued twin change notification as invocation bodies (batches of at most the
/// batch size), for running without a handler.
pub(super) fn drain_twin_envelopes(world: &World) -> Vec<Value> {
    let mut envelopes = Vec::new();
    for partition in 0..world.twin_wake.len() {
        loop {
            let batch: Vec<HubMessage> = {
                let mut state = world.lock();
                let queue = &mut state.twin_queues[partition];
                let take = queue.len().min(world.config.batch_size.max(1));
                queue.drain(..take).collect()
            };
            if batch.is_empty() {
                break;
            }
            envelopes.push(twin_envelope(world, partition, &batch, 0));
        }
    }
    envelopes
}

/// Takes every queued Event Grid event as invocation bodies.
pub(super) fn drain_event_envelopes(world: &World) -> Vec<Value> {
    let events: Vec<Value> = world.lock().events.drain(..).collect();
    events.iter().map(|e| event_envelope(world, e)).collect()
}
