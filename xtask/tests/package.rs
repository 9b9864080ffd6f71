//! The packaged Function App, built as `cargo xtask package` builds it: the layout the host
//! reads, an executable that starts on the oldest host image (no OpenSSL, glibc ≤ 2.31), and
//! that it answers `GET /`. Ignored by default (a release build with zig takes minutes);
//! `.ci/run` runs it with `cargo test -p xtask -- --ignored`.

use std::path::PathBuf;
use xtask::elf;
use xtask::package::{package, repository_root, PackageOptions};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
#[ignore = "builds the release binary with zig (minutes); .ci/run runs it"]
fn the_packaged_app_has_the_hosts_layout_and_a_binary_every_host_image_starts() {
    let out = scratch("app");
    let zip = scratch("zip").join("app.zip");
    let packaged = package(
        &repository_root(),
        &PackageOptions {
            out: out.clone(),
            zip: Some(zip.clone()),
        },
    )
    .expect("cargo xtask package");

    for file in [
        "host.json",
        "PatchEvents/function.json",
        "DeviceEvents/function.json",
        "TwinChanges/function.json",
        "RolloutTick/function.json",
        "Operator/function.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing from the app root");
    }
    // checked as text: the task has no JSON dependency of its own
    let host = std::fs::read_to_string(out.join("host.json")).expect("host.json");
    assert!(
        host.contains("\"defaultExecutablePath\": \"patchwave\""),
        "{host}"
    );
    assert_eq!(packaged.executable, out.join("patchwave"));
    assert!(std::fs::metadata(&zip).expect("zip").len() > 1_000_000);

    let needs = elf::inspect(&packaged.executable).expect("elf");
    assert!(
        !needs
            .libraries
            .iter()
            .any(|l| l.starts_with("libssl") || l.starts_with("libcrypto")),
        "OpenSSL linked: {needs:?}"
    );
    let highest = needs.highest_glibc().unwrap_or((0, 0));
    assert!(highest <= (2, 31), "needs glibc {highest:?}: {needs:?}");
    assert!(
        packaged.ready.starts_with("HTTP/1.1 200"),
        "{}",
        packaged.ready
    );
    let _ = std::fs::remove_dir_all(&out);
}
