//! The Table Storage part of the e2e benchmark: patchwave on Azurite beside the floor of the
//! same Azurite in the same run — device rows shaped as the store writes them, in entity group
//! transactions of 100 into one rollout's partition, 4 writers, through the store's own client
//! (`patchwave::store::table::floor`), measured just before and just after patchwave.

use crate::{azurite, batches, cpu_seconds, devices, post_all, print_commits, serve_patchwave};
use crate::{Figures, DEVICES, IN_FLIGHT};
use patchwave::store::table::floor::{write_device_rows, FloorRun};
use patchwave::store::table::TableStore;
use std::sync::Arc;
use std::time::Instant;

/// Report passes on Table (each a new twin version of every device).
const TABLE_PASSES: u64 = 3;

/// The floor once: `DEVICES` rows into a fresh partition; its rate and this process's CPU
/// per entity.
async fn floor(connection: &str, table: &str, label: &str) -> (FloorRun, f64) {
    floor_with(connection, table, label, IN_FLIGHT).await
}

async fn floor_with(connection: &str, table: &str, label: &str, writers: usize) -> (FloorRun, f64) {
    let cpu_before = cpu_seconds();
    let run = write_device_rows(connection, table, label, &devices(), writers)
        .await
        .expect("floor on azurite");
    let cpu = (cpu_seconds() - cpu_before) * 1e6 / run.entities as f64;
    (run, cpu)
}

/// Measures and prints patchwave on Table beside the floor; returns patchwave's figures.
///
/// The floor writes `DEVICES` new rows first (what creating a rollout writes), then the same
/// rows again, over themselves (what reports do: every report replaces an existing record in
/// a partition of the whole fleet), before patchwave and again after it; then once more
/// with one writer, one transaction at a time (a rollout's commits follow each other).
pub async fn measure() -> Figures {
    let connection = azurite::connection_string();
    let prefix = azurite::unique_prefix();
    let floor_table = format!("{prefix}Floor");
    let (new_rows, _) = floor(&connection, &floor_table, "floor").await;
    let (before, before_cpu) = floor(&connection, &floor_table, "floor").await;
    let store = TableStore::connect_with_prefix(&connection, &prefix)
        .await
        .expect("azurite");
    let started = Instant::now();
    let (server, service) = serve_patchwave(Arc::new(store), "table").await;
    let created = started.elapsed();
    let fleet = devices();
    let mut passes = Vec::new();
    for pass in 0..TABLE_PASSES {
        passes.push(post_all(&server.url, &batches(&fleet, 5 + pass)).await);
    }
    drop(server);
    let (after, after_cpu) = floor(&connection, &floor_table, "floor").await;
    let (single, _) = floor_with(&connection, &floor_table, "floor", 1).await;
    print_commits("table", &service);
    println!(
        "  {:<26} {:>9.0} entities/s ({} transactions of 100 new rows, {IN_FLIGHT} writers)",
        "floor: Azurite, new rows",
        new_rows.per_second(),
        new_rows.transactions,
    );
    let floor_rate = (before.per_second() + after.per_second()) / 2.0;
    let floor_cpu = (before_cpu + after_cpu) / 2.0;
    println!(
        "  {:<26} {:>9.0} entities/s ({:.0} before, {:.0} after; the same rows upserted again, {IN_FLIGHT} writers)   {:>5.1} µs CPU/entity",
        "floor: Azurite, rows exist",
        floor_rate,
        before.per_second(),
        after.per_second(),
        floor_cpu
    );
    println!(
        "  {:<26} {:>9.0} entities/s (rows exist; one transaction of 100 at a time: {:.1} ms each)",
        "floor: Azurite, 1 writer",
        single.per_second(),
        single.elapsed.as_secs_f64() * 1000.0 / single.transactions as f64
    );
    let per_pass: Vec<String> = passes
        .iter()
        .map(|p| format!("{:.0}", p.per_second))
        .collect();
    let ours = crate::median(passes);
    println!(
        "  {:<26} {:>9.0} events/s   p50 {:>6.2} ms   p99 {:>6.2} ms per batch   {:>5.1} µs CPU/event   = {:.2} of the Azurite floor (rows exist), {:.2} of its one-writer floor (passes: {} events/s)",
        "patchwave, Table (Azurite)",
        ours.per_second,
        ours.p50_ms,
        ours.p99_ms,
        ours.cpu_us_per_event,
        ours.per_second / floor_rate,
        ours.per_second / single.per_second(),
        per_pass.join(", ")
    );
    println!(
        "  {:<26} {:>9.1} s for {DEVICES} devices = {:.2}x the floor's {:.1} s for {DEVICES} new rows",
        "creating the rollout",
        created.as_secs_f64(),
        created.as_secs_f64() / new_rows.elapsed.as_secs_f64(),
        new_rows.elapsed.as_secs_f64()
    );
    ours
}
