//! Integration tests of the host protocol: the real router on port 0, real example payloads
//! POSTed over HTTP, decoded values checked field by field.

mod device_events;
mod examples_coverage;
mod logs;
mod operator;
mod package;
mod patch_events;
mod rollout_tick;
mod support;
mod twin_changes;
