//! `cargo xtask …`: the repository's build tasks (`cargo xtask package --out DIR`).

use anyhow::{bail, Context};
use std::path::PathBuf;
use xtask::package::{package, PackageOptions};

const USAGE: &str = "usage: cargo xtask package --out DIR [--zip FILE]

  package   build the release binary for the Functions host (x86-64 Linux, glibc <= 2.31,
            no OpenSSL) with cargo-zigbuild, check it, and lay out DIR as the Function App
            root (host.json, one folder per function, the executable); --zip also writes a
            zip for zip deploy. Installs what it needs under target/xtask/ on first use:
            the `ziglang` wheel (PyPI, in a virtualenv) and cargo-zigbuild (crates.io).";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("package") => {
            let options = parse_package(args.collect())?;
            let report = package(&xtask::package::repository_root(), &options)?;
            println!("{report}");
            Ok(())
        }
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

fn parse_package(args: Vec<String>) -> anyhow::Result<PackageOptions> {
    let mut out = None;
    let mut zip = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--zip" => zip = Some(PathBuf::from(value("--zip")?)),
            other => bail!("unknown argument `{other}`\n\n{USAGE}"),
        }
    }
    Ok(PackageOptions {
        out: out.context(format!("--out DIR is required\n\n{USAGE}"))?,
        zip,
    })
}
