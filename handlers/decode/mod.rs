//! Decoders from host payloads to typed trigger inputs. Pure functions: bytes in, values out.
//!
//! Every decoder is total: it returns a value or an error that says what is wrong, never
//! panics, and decodes each item of a batch on its own so one bad item never drops the rest.

pub mod agent_report;
pub mod alert;
pub mod device_events;
pub mod event_grid;
pub mod http_request;
pub mod timer;
pub mod twin_change;

use serde::Serialize;

/// One item of a batch that could not be used, with its position and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemError {
    /// Zero-based position of the item in the batch.
    pub index: usize,
    /// What is wrong with it.
    pub reason: String,
    /// The item as it arrived (clipped), for the dead-letter record.
    pub raw: String,
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "item {}: {}", self.index, self.reason)
    }
}

/// Longest raw text kept with an [`ItemError`].
pub const MAX_RAW_CHARS: usize = 64 * 1024;
