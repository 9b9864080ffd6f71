//! The cross toolchain `package` needs, installed on first use under `target/xtask/`: Zig from
//! the `ziglang` wheel (PyPI, in a virtualenv) as the C compiler and linker that targets an old
//! glibc, and cargo-zigbuild (crates.io) to drive cargo with it. Nothing else is assumed
//! beyond `python3` with `venv` and the Rust toolchain that runs this task.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Pinned versions, so a fresh clone builds with what was tested.
pub const ZIGLANG_WHEEL: &str = "ziglang==0.17.1";
/// cargo-zigbuild's pinned version.
pub const CARGO_ZIGBUILD_VERSION: &str = "0.24.1";

/// Where the tools are.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// The virtualenv's `python3`, which runs `python3 -m ziglang`.
    pub python: PathBuf,
    /// The `cargo-zigbuild` executable.
    pub cargo_zigbuild: PathBuf,
}

/// Makes sure both tools are installed under `dir` (reusing what is there).
pub fn ensure(dir: &Path) -> anyhow::Result<Toolchain> {
    let python = ensure_zig(&dir.join("venv"))?;
    let cargo_zigbuild = ensure_cargo_zigbuild(dir)?;
    Ok(Toolchain {
        python,
        cargo_zigbuild,
    })
}

fn ensure_zig(venv: &Path) -> anyhow::Result<PathBuf> {
    let python = venv.join("bin").join("python3");
    if zig_version(&python).is_some() {
        return Ok(python);
    }
    eprintln!("xtask: installing {ZIGLANG_WHEEL} into {}", venv.display());
    run(Command::new("python3").arg("-m").arg("venv").arg(venv))
        .context("creating a virtualenv (needs python3 with venv, Debian: python3-venv)")?;
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        ZIGLANG_WHEEL,
    ]))
    .context("installing the ziglang wheel from PyPI")?;
    match zig_version(&python) {
        Some(version) => {
            eprintln!("xtask: zig {version}");
            Ok(python)
        }
        None => bail!("`{} -m ziglang version` does not answer", python.display()),
    }
}

fn zig_version(python: &Path) -> Option<String> {
    let output = Command::new(python)
        .args(["-m", "ziglang", "version"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn ensure_cargo_zigbuild(root: &Path) -> anyhow::Result<PathBuf> {
    let executable = root.join("bin").join("cargo-zigbuild");
    let installed = Command::new(&executable)
        .arg("--version")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_ZIGBUILD_VERSION));
    if installed {
        return Ok(executable);
    }
    eprintln!(
        "xtask: installing cargo-zigbuild {CARGO_ZIGBUILD_VERSION} into {}",
        root.display()
    );
    run(Command::new(cargo())
        .args(["install", "--locked", "--quiet", "--root"])
        .arg(root)
        .args(["cargo-zigbuild", "--version", CARGO_ZIGBUILD_VERSION]))
    .context("installing cargo-zigbuild from crates.io")?;
    Ok(executable)
}

/// The cargo that runs this task (`CARGO`), else the one on `PATH`.
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// Runs `command`, failing with its exit status.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{:?} failed ({status})", command.get_program());
    }
    Ok(())
}
