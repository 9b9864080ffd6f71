//! What an executable needs from the machine that starts it: its shared libraries (`NEEDED`)
//! and the glibc symbol versions it requires (`.gnu.version_r`), read from the ELF file.

use anyhow::{bail, Context};
use object::elf::{FileHeader64, DT_NEEDED};
use object::read::elf::{Dyn as _, FileHeader as _};
use object::Endianness;
use std::fmt;
use std::path::Path;

/// The oldest glibc the Functions host still runs on (Debian 11 images).
pub const MAX_GLIBC: (u32, u32) = (2, 31);

/// What a dynamically linked executable asks of its host; empty for a static one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Shared libraries, in the order the file names them.
    pub libraries: Vec<String>,
    /// Symbol versions required of glibc (`GLIBC_2.28`, …), sorted, each once.
    pub glibc_versions: Vec<String>,
}

impl Needs {
    /// The highest `GLIBC_x.y` required, if any.
    pub fn highest_glibc(&self) -> Option<(u32, u32)> {
        self.glibc_versions
            .iter()
            .filter_map(|v| parse_glibc_version(v))
            .max()
    }

    /// Why this executable would not start on every host image, if it would not.
    pub fn portability_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for library in &self.libraries {
            if library.starts_with("libssl") || library.starts_with("libcrypto") {
                problems.push(format!("links OpenSSL ({library})"));
            }
        }
        if let Some((major, minor)) = self.highest_glibc() {
            if (major, minor) > MAX_GLIBC {
                problems.push(format!(
                    "needs GLIBC_{major}.{minor}, newer than {}.{}",
                    MAX_GLIBC.0, MAX_GLIBC.1
                ));
            }
        }
        for version in &self.glibc_versions {
            if parse_glibc_version(version).is_none() {
                problems.push(format!("needs glibc's {version}"));
            }
        }
        problems
    }
}

impl fmt::Display for Needs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.libraries.is_empty() {
            return write!(f, "statically linked");
        }
        write!(f, "needs {}", self.libraries.join(", "))?;
        match self.highest_glibc() {
            Some((major, minor)) => write!(f, "; highest glibc symbol version {major}.{minor}"),
            None => Ok(()),
        }
    }
}

/// `GLIBC_2.30` → `(2, 30)`; `None` for anything else (`GLIBC_PRIVATE`).
pub fn parse_glibc_version(version: &str) -> Option<(u32, u32)> {
    let numbers = version.strip_prefix("GLIBC_")?;
    let mut parts = numbers.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// Reads what the 64-bit ELF executable at `path` needs.
pub fn inspect(path: &Path) -> anyhow::Result<Needs> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    inspect_bytes(&data).with_context(|| format!("reading {} as ELF", path.display()))
}

/// Reads what a 64-bit ELF image needs.
pub fn inspect_bytes(data: &[u8]) -> anyhow::Result<Needs> {
    let header = FileHeader64::<Endianness>::parse(data).context("not a 64-bit ELF file")?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let mut needs = Needs::default();
    if let Some((entries, link)) = sections.dynamic(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        for entry in entries {
            if entry.tag32(endian) == Some(DT_NEEDED) {
                let name = entry.string(endian, strings)?;
                needs
                    .libraries
                    .push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    if let Some((mut files, link)) = sections.gnu_verneed(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        while let Some((_file, mut versions)) = files.next()? {
            while let Some(version) = versions.next()? {
                let name = String::from_utf8_lossy(version.name(endian, strings)?).into_owned();
                if name.starts_with("GLIBC_") && !needs.glibc_versions.contains(&name) {
                    needs.glibc_versions.push(name);
                }
            }
        }
    }
    needs.glibc_versions.sort_by_key(|v| parse_glibc_version(v));
    Ok(needs)
}

/// `Ok` when the executable would start on every host image, else why not.
pub fn require_portable(path: &Path) -> anyhow::Result<Needs> {
    let needs = inspect(path)?;
    let problems = needs.portability_problems();
    if !problems.is_empty() {
        bail!(
            "{} is not portable: {}",
            path.display(),
            problems.join("; ")
        );
    }
    Ok(needs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_compare_as_numbers() {
        assert_eq!(parse_glibc_version("GLIBC_2.30"), Some((2, 30)));
        assert_eq!(parse_glibc_version("GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(parse_glibc_version("GLIBC_PRIVATE"), None);
        assert!(parse_glibc_version("GLIBC_2.9") < parse_glibc_version("GLIBC_2.31"));
    }

    #[test]
    fn openssl_and_new_glibc_are_problems_old_glibc_is_not() {
        let fine = Needs {
            libraries: vec!["libc.so.6".into(), "libm.so.6".into()],
            glibc_versions: vec!["GLIBC_2.2.5".into(), "GLIBC_2.30".into()],
        };
        assert!(fine.portability_problems().is_empty(), "{fine}");
        let built_here = Needs {
            libraries: vec![
                "libssl.so.3".into(),
                "libcrypto.so.3".into(),
                "libc.so.6".into(),
            ],
            glibc_versions: vec!["GLIBC_2.17".into(), "GLIBC_2.34".into()],
        };
        let problems = built_here.portability_problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[2].contains("GLIBC_2.34"), "{problems:?}");
    }

    #[test]
    fn reads_the_needs_of_a_real_executable() {
        // this test binary is a dynamically linked glibc executable
        let needs = inspect(&std::env::current_exe().expect("exe")).expect("elf");
        assert!(
            needs.libraries.iter().any(|l| l == "libc.so.6"),
            "{needs:?}"
        );
        assert!(
            needs.highest_glibc().is_some_and(|v| v >= (2, 2)),
            "{needs:?}"
        );
    }

    #[test]
    fn what_is_not_elf_is_an_error() {
        assert!(inspect_bytes(b"#!/bin/sh\necho hi\n").is_err());
    }
}
