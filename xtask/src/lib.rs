//! The repository's build tasks, as a library so their tests can call them: the portable
//! binary for the Functions host, its checks, and the Function App layout.

pub mod elf;
pub mod package;
pub mod smoke;
pub mod toolchain;
