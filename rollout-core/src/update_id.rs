//! The identity of a Device Update update: provider, name and version.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies one update imported into Device Update for IoT Hub.
///
/// All three parts are required by the Device Update REST API (`2022-10-01`). The device
/// agent reports the installed update as this object serialized into a JSON string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateId {
    /// Publisher of the update, e.g. `Contoso`.
    pub provider: String,
    /// Name of the update, e.g. `Gateway`.
    pub name: String,
    /// Version of the update, e.g. `2.4.1`.
    pub version: String,
}

/// Why a value could not be read as an [`UpdateId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateIdError {
    /// A part is missing or empty.
    #[error("update id is missing `{0}`")]
    MissingPart(&'static str),
}

impl UpdateId {
    /// Builds an update id, refusing empty parts.
    pub fn new(
        provider: impl Into<String>,
        name: impl Into<String>,
        version: impl Into<String>,
    ) -> Result<Self, UpdateIdError> {
        let id = UpdateId {
            provider: provider.into(),
            name: name.into(),
            version: version.into(),
        };
        for (part, value) in [
            ("provider", &id.provider),
            ("name", &id.name),
            ("version", &id.version),
        ] {
            if value.trim().is_empty() {
                return Err(UpdateIdError::MissingPart(part));
            }
        }
        Ok(id)
    }
}

impl fmt::Display for UpdateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.provider, self.name, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_parts_are_refused_by_name() {
        assert_eq!(
            UpdateId::new("Contoso", " ", "1.0"),
            Err(UpdateIdError::MissingPart("name"))
        );
        assert_eq!(
            UpdateId::new("Contoso", "Gateway", "2.4.1")
                .expect("valid")
                .to_string(),
            "Contoso/Gateway/2.4.1"
        );
    }
}
