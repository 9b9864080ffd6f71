//! The Table store's device index (a log of claims per bucket, compacted into snapshots):
//! instances racing to append claims, readers cold and warm across a compaction, a claim
//! arriving after a compaction, and the adoption of the old one-row-per-device layout.

use crate::table::Guard;
use patchwave::store::table::TableStore;
use patchwave::store::Store;
use rollout_core::DeviceRecord;
use std::collections::HashMap;

async fn instance(guard: &Guard) -> TableStore {
    TableStore::connect_with_prefix(&guard.spec, &guard.prefix)
        .await
        .expect("connect to azurite")
}

fn records(devices: &[String]) -> Vec<(String, DeviceRecord)> {
    devices
        .iter()
        .map(|device| (device.clone(), DeviceRecord::new(0)))
        .collect()
}

fn fleet(count: usize, name: &str) -> Vec<String> {
    (0..count).map(|i| format!("{name}-{i:04}")).collect()
}

/// Two instances adding devices at once take the same claim numbers in every bucket; each
/// loser reads the winner's claim and appends after it, so no device is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_adding_devices_at_once_each_get_their_claims_in() {
    let (_, guard) = crate::table::fresh().await;
    let (first, second) = (instance(&guard).await, instance(&guard).await);
    let (a, b) = (fleet(300, "a"), fleet(300, "b"));
    let add = |store: TableStore, rollout: &'static str, devices: Vec<String>| async move {
        for chunk in devices.chunks(30) {
            store
                .add_devices(rollout, &records(chunk))
                .await
                .expect("add");
        }
    };
    tokio::join!(add(first, "ra", a.clone()), add(second, "rb", b.clone()));
    let cold = instance(&guard).await;
    let everyone: Vec<String> = a.iter().chain(&b).cloned().collect();
    let routes = cold.rollouts_of_devices(&everyone).await.expect("routes");
    assert_eq!(routes.len(), 600);
    assert!(a.iter().all(|device| routes[device] == "ra"));
    assert!(b.iter().all(|device| routes[device] == "rb"));
}

/// Past 64 claims a bucket is compacted: its rows before the snapshot are deleted, and a
/// reader that had read part of the log, and one that never read it, route as the log says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_index_routes_every_device_as_its_latest_claim_says() {
    let (_, guard) = crate::table::fresh().await;
    let (writer, warm) = (instance(&guard).await, instance(&guard).await);
    let devices = fleet(160, "moving");
    let rounds = 70;
    let mut expected: HashMap<String, String> = HashMap::new();
    for round in 0..rounds {
        // each round moves a different two-thirds of the devices to one of three rollouts
        let rollout = format!("r{}", round % 3);
        let moved: Vec<String> = devices
            .iter()
            .enumerate()
            .filter(|(i, _)| (i + round) % 3 != 0)
            .map(|(_, d)| d.clone())
            .collect();
        writer
            .add_devices(&rollout, &records(&moved))
            .await
            .expect("add");
        for device in moved {
            expected.insert(device, rollout.clone());
        }
        if round == 30 {
            let routes = warm.rollouts_of_devices(&devices).await.expect("routes");
            assert_eq!(routes, expected, "warm reader at round {round}");
        }
    }
    let rows = writer.device_index_rows().await.expect("rows");
    // 16 buckets, about 70 claims each without compaction; a snapshot and at most 6 claims
    // each with it
    assert!(rows <= 16 * 8, "{rows} rows: the index was not compacted");
    let cold = instance(&guard).await;
    for reader in [&warm, &cold, &writer] {
        let routes = reader.rollouts_of_devices(&devices).await.expect("routes");
        assert_eq!(routes, expected);
    }
}

/// A store last written by a build that kept one index row per device adopts those routes
/// when opened, once: an upgrade in the middle of a rollout keeps routing its devices, and a
/// device a later rollout claims moves there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_of_an_index_an_earlier_build_wrote_are_adopted_once() {
    use patchwave::store::table::legacy::write_legacy_index;
    let guard = Guard {
        spec: crate::azurite::connection_string(),
        prefix: crate::azurite::unique_prefix(),
    };
    let old: Vec<(String, String)> = (0..40)
        .map(|i| (format!("old-{i:02}"), format!("r{}", i % 2)))
        .collect();
    write_legacy_index(&guard.spec, &guard.prefix, &old)
        .await
        .expect("old index");
    let store = instance(&guard).await;
    let devices: Vec<String> = old.iter().map(|(device, _)| device.clone()).collect();
    let routes = store.rollouts_of_devices(&devices).await.expect("routes");
    let expected: HashMap<String, String> = old.iter().cloned().collect();
    assert_eq!(routes, expected);
    store
        .add_devices("r9", &records(&devices[..5]))
        .await
        .expect("add");
    let rows = store.device_index_rows().await.expect("rows");
    // a second start adopts nothing again: the moved devices stay moved
    let again = instance(&guard).await;
    assert_eq!(again.device_index_rows().await.expect("rows"), rows);
    let routes = again.rollouts_of_devices(&devices).await.expect("routes");
    assert_eq!(routes["old-00"], "r9");
    assert_eq!(routes["old-39"], "r1");
}

/// The device-index bucket of a device, as the store computes it.
fn bucket_of(device: &str) -> u8 {
    use sha2::Digest;
    sha2::Sha256::digest(device.as_bytes())[0] >> 4
}

/// A proxy in front of Azurite that holds the first entity group transaction whose body
/// carries `marker` until released, and forwards everything else as it comes.
struct HoldingProxy {
    connection_string: String,
    held: std::sync::Arc<tokio::sync::Notify>,
    release: std::sync::Arc<tokio::sync::Notify>,
}

async fn holding_proxy(connection_string: &str, marker: &'static str) -> HoldingProxy {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let start = connection_string.find("TableEndpoint=").expect("endpoint") + 14;
    let end = connection_string[start..]
        .find(';')
        .map_or(connection_string.len(), |e| start + e);
    let endpoint = &connection_string[start..end];
    let origin_end = endpoint[8..].find('/').map_or(endpoint.len(), |i| i + 8);
    let upstream = endpoint[..origin_end].to_string();
    let (held, release) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let armed = Arc::new(AtomicBool::new(true));
    let client = reqwest::Client::new();
    let (held_in, release_in) = (held.clone(), release.clone());
    let forward = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (client, upstream, held, release, armed) = (
            client.clone(),
            upstream.clone(),
            held_in.clone(),
            release_in.clone(),
            armed.clone(),
        );
        async move {
            let hold = method == Method::POST
                && uri.path().ends_with("$batch")
                && String::from_utf8_lossy(&body).contains(marker)
                && armed.swap(false, Ordering::SeqCst);
            if hold {
                held.notify_one();
                release.notified().await;
            }
            let url = format!(
                "{upstream}{}",
                uri.path_and_query().map_or("", |p| p.as_str())
            );
            let mut request = client.request(method, url).body(body);
            for (name, value) in &headers {
                if name != "host" && name != "content-length" {
                    request = request.header(name, value);
                }
            }
            let response = request.send().await.expect("azurite answers");
            let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
            let mut answer_headers = HeaderMap::new();
            for (name, value) in response.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    answer_headers.insert(name.clone(), value.clone());
                }
            }
            let bytes = response.bytes().await.expect("body");
            (status, answer_headers, bytes)
        }
    };
    let app = axum::Router::new().fallback(forward);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let proxied = format!("http://{address}{}", &endpoint[origin_end..]);
    HoldingProxy {
        connection_string: connection_string.replace(endpoint, &proxied),
        held,
        release,
    }
}

/// A writer whose claim was sent after reading the bucket, and arrives after another
/// instance appended 64 claims and compacted them away (deleting the very number it takes),
/// fails whole and appends again after the snapshot: its claim is not lost behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_sent_before_a_compaction_and_arriving_after_it_is_appended_again() {
    let (_, guard) = crate::table::fresh().await;
    let proxy = holding_proxy(&guard.spec, "\"Rollout\":\"held-rollout\"").await;
    let slow = TableStore::connect_with_prefix(&proxy.connection_string, &guard.prefix)
        .await
        .expect("through the proxy");
    let fast = instance(&guard).await;
    let device = "held-device".to_string();
    let fillers: Vec<String> = (0..)
        .map(|i| format!("filler-{i}"))
        .filter(|filler| bucket_of(filler) == bucket_of(&device))
        .take(64)
        .collect();
    let held = tokio::spawn({
        let device = device.clone();
        async move { slow.add_devices("held-rollout", &records(&[device])).await }
    });
    proxy.held.notified().await;
    for (i, filler) in fillers.iter().enumerate() {
        fast.add_devices(&format!("r{i}"), &records(std::slice::from_ref(filler)))
            .await
            .expect("add");
    }
    assert!(
        fast.device_index_rows().await.expect("rows") <= 3,
        "64 claims compacted into a snapshot (and the head)"
    );
    proxy.release.notify_one();
    held.await
        .expect("task")
        .expect("the held writer appends again");
    let cold = instance(&guard).await;
    let mut everyone = fillers.clone();
    everyone.push(device.clone());
    let routes = cold.rollouts_of_devices(&everyone).await.expect("routes");
    assert_eq!(
        routes.get(&device).map(String::as_str),
        Some("held-rollout")
    );
    assert_eq!(routes.len(), 65);
}

/// Two instances adopt the old layout at once, and one of them moves a device to a new
/// rollout in between: the other's adoption, arriving late, does not move it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adoption_arriving_late_does_not_move_a_device_back() {
    use patchwave::store::table::legacy::write_legacy_index;
    let guard = Guard {
        spec: crate::azurite::connection_string(),
        prefix: crate::azurite::unique_prefix(),
    };
    let device = "adopted-device".to_string();
    write_legacy_index(
        &guard.spec,
        &guard.prefix,
        &[(device.clone(), "r-old".into())],
    )
    .await
    .expect("old index");
    let proxy = holding_proxy(&guard.spec, "\"Rollout\":\"r-old\"").await;
    let late = TableStore::connect_with_prefix(&proxy.connection_string, &guard.prefix)
        .await
        .expect("through the proxy");
    let adopting = tokio::spawn({
        let device = device.clone();
        async move { late.rollouts_of_devices(&[device]).await }
    });
    proxy.held.notified().await;
    let first = instance(&guard).await;
    first
        .add_devices("r-new", &records(std::slice::from_ref(&device)))
        .await
        .expect("adopts, then moves the device");
    proxy.release.notify_one();
    adopting
        .await
        .expect("task")
        .expect("the late adoption ends");
    for reader in [&first, &instance(&guard).await] {
        let routes = reader
            .rollouts_of_devices(std::slice::from_ref(&device))
            .await;
        assert_eq!(routes.expect("routes")[&device], "r-new");
    }
}
