//! The Table store's device index (a log of claims per bucket, compacted into snapshots):
//! instances racing to append claims, and readers cold and warm across a compaction.

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
