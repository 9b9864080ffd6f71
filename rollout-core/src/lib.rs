//! patchwave's pure rollout engine: `state + event + now -> new state + effects`.
//!
//! This crate decides; it never acts. It has no I/O, no clock, no async and no randomness:
//! everything it knows arrives as arguments, so a whole rollout can be replayed in a unit test.
//! The shell in `handlers/` loads state, calls in here, stores the result and executes the
//! effects, which are plain data.

#![warn(missing_docs)]

mod update_id;

pub use update_id::{UpdateId, UpdateIdError};
