//! `cargo xtask package --out DIR`: builds `patchwave` for the Functions host with
//! cargo-zigbuild (x86-64 Linux, glibc symbols no newer than 2.31, rustls only), refuses a
//! binary that would not start there, lays out DIR with `patchwave package`, and checks that
//! the packaged executable serves `GET /`.

use crate::{elf, smoke, toolchain};
use anyhow::Context;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target the host runs, with the glibc version cargo-zigbuild links against.
pub const ZIG_TARGET: &str = "x86_64-unknown-linux-gnu.2.31";
/// The same target as cargo names its output folder.
pub const RUST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// What to produce.
#[derive(Debug, Clone)]
pub struct PackageOptions {
    /// The app root to write.
    pub out: PathBuf,
    /// Also a zip of it, for zip deploy.
    pub zip: Option<PathBuf>,
}

/// What was produced and checked.
#[derive(Debug, Clone)]
pub struct Packaged {
    /// The app root.
    pub out: PathBuf,
    /// The executable in it.
    pub executable: PathBuf,
    /// What the executable needs of its host.
    pub needs: elf::Needs,
    /// What `GET /` answered when the packaged executable was started.
    pub ready: String,
}

impl fmt::Display for Packaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Function App root: {}", self.out.display())?;
        writeln!(
            f,
            "executable: {} ({})",
            self.executable.display(),
            self.needs
        )?;
        write!(f, "smoke test: GET / answered {}", self.ready)
    }
}

/// The repository root (the parent of `xtask/`).
pub fn repository_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
}

/// Builds, checks, assembles and smoke-tests the app.
pub fn package(root: &Path, options: &PackageOptions) -> anyhow::Result<Packaged> {
    let target_dir = target_dir(root);
    let tools = toolchain::ensure(&target_dir.join("xtask"))?;
    let binary = build(root, &target_dir, &tools)?;
    let needs = elf::require_portable(&binary)?;
    let out = absolute(&options.out)?;
    assemble(&binary, &out, options.zip.as_deref())?;
    let executable = out.join("patchwave");
    let ready = smoke::serves_root(&executable)
        .with_context(|| format!("starting {} serve", executable.display()))?;
    Ok(Packaged {
        out,
        executable,
        needs,
        ready,
    })
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()?.join(path))
}

fn build(root: &Path, target_dir: &Path, tools: &toolchain::Toolchain) -> anyhow::Result<PathBuf> {
    eprintln!("xtask: building patchwave for {ZIG_TARGET} (release)");
    toolchain::run(
        Command::new(&tools.cargo_zigbuild)
            .current_dir(root)
            .args(["zigbuild", "--release", "--locked", "--bin", "patchwave"])
            .args(["--package", "patchwave", "--target", ZIG_TARGET])
            .arg("--target-dir")
            .arg(target_dir)
            .env("CARGO", toolchain::cargo())
            .env("CARGO_ZIGBUILD_PYTHON_PATH", &tools.python),
    )
    .context("cargo zigbuild")?;
    let binary = target_dir
        .join(RUST_TARGET)
        .join("release")
        .join("patchwave");
    anyhow::ensure!(binary.is_file(), "the build left no {}", binary.display());
    Ok(binary)
}

/// Lets the built binary write the app root around itself (`patchwave package`).
fn assemble(binary: &Path, out: &Path, zip: Option<&Path>) -> anyhow::Result<()> {
    let mut command = Command::new(binary);
    command
        .arg("package")
        .arg("--out")
        .arg(out)
        .arg("--binary")
        .arg(binary);
    if let Some(zip) = zip {
        command.arg("--zip").arg(absolute(zip)?);
    }
    toolchain::run(&mut command).context("patchwave package")
}
