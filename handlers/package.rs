//! `patchwave package`: assembles the deployable Function App from the files built in.
//!
//! Layout the host expects at the app root: `host.json`, one `<Function>/function.json` per
//! function, and the executable `host.json` names (`customHandler.description.defaultExecutablePath`).

use anyhow::{bail, Context};
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `host.json` as committed at the repository root.
pub const HOST_JSON: &str = include_str!("../host.json");

/// Every function: name (= folder = route) and its function.json.
pub const FUNCTIONS: [(&str, &str); 5] = [
    (
        "PatchEvents",
        include_str!("../function-definitions/PatchEvents/function.json"),
    ),
    (
        "DeviceEvents",
        include_str!("../function-definitions/DeviceEvents/function.json"),
    ),
    (
        "TwinChanges",
        include_str!("../function-definitions/TwinChanges/function.json"),
    ),
    (
        "RolloutTick",
        include_str!("../function-definitions/RolloutTick/function.json"),
    ),
    (
        "Operator",
        include_str!("../function-definitions/Operator/function.json"),
    ),
];

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageReport {
    /// The app folder.
    pub out: PathBuf,
    /// Files written, relative to `out`.
    pub files: Vec<String>,
    /// The zip, when asked for.
    pub zip: Option<PathBuf>,
}

impl fmt::Display for PackageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "packaged Function App in {}:", self.out.display())?;
        for file in &self.files {
            writeln!(f, "  {file}")?;
        }
        match &self.zip {
            Some(zip) => write!(f, "zip for zip deploy: {}", zip.display()),
            None => write!(f, "(no zip; pass --zip FILE for zip deploy)"),
        }
    }
}

/// The executable name `host.json` tells the host to start.
pub fn executable_name() -> anyhow::Result<String> {
    let host: serde_json::Value =
        serde_json::from_str(HOST_JSON).context("host.json is not JSON")?;
    let path = host
        .pointer("/customHandler/description/defaultExecutablePath")
        .and_then(|v| v.as_str())
        .context("host.json has no customHandler.description.defaultExecutablePath")?;
    Ok(path.to_string())
}

/// Writes the app into `out` (and a zip of it into `zip`), shipping `binary`.
pub fn assemble(out: &Path, binary: &Path, zip: Option<&Path>) -> anyhow::Result<PackageReport> {
    if !binary.is_file() {
        bail!(
            "binary {} does not exist (build it with `cargo build --release`)",
            binary.display()
        );
    }
    let executable = executable_name()?;
    let mut entries: Vec<(String, Vec<u8>, u32)> =
        vec![("host.json".into(), HOST_JSON.into(), 0o644)];
    for (name, definition) in FUNCTIONS {
        entries.push((format!("{name}/function.json"), definition.into(), 0o644));
    }
    let binary_bytes = fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    entries.push((executable, binary_bytes, 0o755));
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (relative, bytes, mode) in &entries {
        write_file(&out.join(relative), bytes, *mode)?;
    }
    if let Some(zip) = zip {
        write_zip(zip, &entries)?;
    }
    Ok(PackageReport {
        out: out.to_path_buf(),
        files: entries.into_iter().map(|(name, _, _)| name).collect(),
        zip: zip.map(Path::to_path_buf),
    })
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    set_mode(path, mode)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode of {}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> anyhow::Result<()> {
    Ok(())
}

fn write_zip(path: &Path, entries: &[(String, Vec<u8>, u32)]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut archive = zip::ZipWriter::new(file);
    for (name, bytes, mode) in entries {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(*mode);
        archive.start_file(name.as_str(), options)?;
        archive.write_all(bytes)?;
    }
    archive.finish()?;
    Ok(())
}
