//! The ids that cross the engine's boundary, one type each so they are never mixed up.
//!
//! Each is a string on the wire and in the store (`#[serde(transparent)]`), and cheap: up to
//! 24 bytes are kept inline (a `CompactString`), so cloning a device or rollout id usually
//! allocates nothing. The engine makes none at random: ids of new rollouts come from the shell.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(CompactString);

        impl $name {
            /// The id as it is written on the wire.
            pub fn new(id: impl Into<CompactString>) -> Self {
                $name(id.into())
            }

            /// The id's text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// An id reads as its text (`&id` where a `&str` is wanted).
        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name::new(id)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name::new(id)
            }
        }

        impl From<&String> for $name {
            fn from(id: &String) -> Self {
                $name::new(id.as_str())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.into_string()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.as_str()
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self.as_str() == other.as_str()
            }
        }
    };
}

string_id!(
    /// A rollout's id (the shell makes it, e.g. `ro-` and 16 hex digits).
    RolloutId
);
string_id!(
    /// An IoT Hub device id (module-qualified ids are the shell's concern).
    DeviceId
);
string_id!(
    /// A Device Update group id (the devices' `ADUGroup` tag value).
    GroupId
);
string_id!(
    /// A Device Update deployment id, made by [`DeploymentId::for_wave`] and
    /// [`DeploymentId::for_rollback`], so creating it again after a crash is idempotent.
    DeploymentId
);
string_id!(
    /// An effect's id: deterministic, used to mark it done and to de-duplicate.
    EffectId
);

/// Longest deployment id Device Update accepts.
pub const MAX_DEPLOYMENT_ID_CHARS: usize = 73;

impl DeploymentId {
    /// The deployment of attempt `attempt` of wave `wave`.
    pub fn for_wave(rollout: &RolloutId, wave: usize, attempt: u32) -> Self {
        DeploymentId::made(rollout.as_str(), &format!("w{wave}a{attempt}"))
    }

    /// The rollback deployment of wave `wave`'s group.
    pub fn for_rollback(rollout: &RolloutId, wave: usize) -> Self {
        DeploymentId::made(rollout.as_str(), &format!("rb{wave}"))
    }

    /// `pw-{rollout}-{purpose}`: lower-case, only the characters Device Update allows, at most
    /// [`MAX_DEPLOYMENT_ID_CHARS`] characters.
    pub fn made(rollout_id: &str, purpose: &str) -> Self {
        let keep = MAX_DEPLOYMENT_ID_CHARS - purpose.len() - 4;
        let clean: String = rollout_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(keep)
            .collect();
        DeploymentId::new(format!("pw-{clean}-{purpose}"))
    }
}

impl EffectId {
    /// Creating deployment `deployment`.
    pub fn create(deployment: &DeploymentId) -> Self {
        EffectId::new(format!("{deployment}:create"))
    }

    /// Cancelling deployment `deployment`.
    pub fn cancel(deployment: &DeploymentId) -> Self {
        EffectId::new(format!("{deployment}:cancel"))
    }

    /// Deleting deployment `deployment`.
    pub fn delete(deployment: &DeploymentId) -> Self {
        EffectId::new(format!("{deployment}:delete"))
    }

    /// Reading the members of wave `wave`'s group for attempt `attempt`.
    pub fn fetch_members(rollout: &RolloutId, wave: usize, attempt: u32) -> Self {
        EffectId::new(format!("{rollout}:members:w{wave}a{attempt}"))
    }

    /// Patching machine `machine` (its resource id, in lower case).
    pub fn install_patches(rollout: &RolloutId, machine: &str) -> Self {
        EffectId::new(format!("{rollout}:patch:{}", machine.to_ascii_lowercase()))
    }

    /// Cancelling maintenance run `run_id`.
    pub fn cancel_run(run_id: &str) -> Self {
        EffectId::new(format!("cancel-run:{}", run_id.to_ascii_lowercase()))
    }

    /// Publishing the lifecycle event of decision number `index`.
    pub fn event(rollout: &RolloutId, index: u64) -> Self {
        EffectId::new(format!("{rollout}:event:{index}"))
    }

    /// Whether this effect belongs to attempt `attempt` of wave `wave` (its id names it).
    pub fn is_for_attempt(&self, wave: usize, attempt: u32) -> bool {
        self.as_str().contains(&format!("w{wave}a{attempt}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_are_deterministic_and_valid_for_device_update() {
        let rollout = RolloutId::new("Roll/Out_1");
        let id = DeploymentId::for_wave(&rollout, 0, 1);
        assert_eq!(id, "pw-roll-out-1-w0a1");
        assert_eq!(id, DeploymentId::for_wave(&rollout, 0, 1));
        let long = DeploymentId::for_rollback(&RolloutId::new("x".repeat(200)), 12);
        assert_eq!(long.as_str().len(), MAX_DEPLOYMENT_ID_CHARS);
        assert!(long.as_str().ends_with("-rb12"));
    }

    #[test]
    fn ids_are_plain_strings_on_the_wire() {
        let id = DeviceId::new("dev-1");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"dev-1\"");
        let back: DeviceId = serde_json::from_str("\"dev-1\"").expect("json");
        assert_eq!(back, id);
        assert_eq!(id.to_string(), "dev-1");
    }
}
