//! Device connection events as the engine sees them: connected or not, when, and the
//! sequence number that orders one device's events (Event Grid delivers them out of order).

use crate::ids::DeviceId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// IoT Hub's `deviceConnectionStateEventInfo.sequenceNumber`: up to 64 hexadecimal digits
/// (256 bits), strictly increasing per device. Kept as 32 big-endian bytes, so comparing
/// values compares the numbers (leading zeros and letter case do not matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConnectionSequence([u8; 32]);

impl ConnectionSequence {
    /// Parses the hexadecimal text IoT Hub sends.
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits = text.trim().trim_start_matches('0');
        if text.trim().is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "sequenceNumber `{}` is not hexadecimal",
                clip(text)
            ));
        }
        if digits.len() > 64 {
            return Err(format!(
                "sequenceNumber `{}` has more than 64 digits",
                clip(text)
            ));
        }
        let mut bytes = [0u8; 32];
        for (position, digit) in digits.chars().rev().enumerate() {
            let value = digit.to_digit(16).unwrap_or(0) as u8;
            let byte = 31 - position / 2;
            bytes[byte] |= if position % 2 == 0 { value } else { value << 4 };
        }
        Ok(ConnectionSequence(bytes))
    }
}

fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}

impl fmt::Display for ConnectionSequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl Serialize for ConnectionSequence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConnectionSequence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ConnectionSequence::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl ConnectionSequence {
    /// The 32 big-endian bytes.
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// From 32 big-endian bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ConnectionSequence(bytes)
    }
}

/// A device connected or disconnected (IoT Hub's `DeviceConnected` / `DeviceDisconnected`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionReport {
    /// The device.
    pub device: DeviceId,
    /// Connected (else disconnected).
    pub connected: bool,
    /// Orders this device's connection events.
    pub sequence: ConnectionSequence,
    /// The event's time.
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        let n = |s: &str| ConnectionSequence::parse(s).expect("hex");
        let official = "000000000000000001D4132452F67CE200000002000000000000000000000001";
        assert!(n(official) > n("1"));
        assert!(n("00A") > n("9"));
        assert_eq!(n("00ff"), n("FF"));
        assert!(n("100") > n("0ff"));
        assert_eq!(n(official).to_string(), official);
        assert!(ConnectionSequence::parse("12g4").is_err());
        assert!(ConnectionSequence::parse("").is_err());
        assert!(ConnectionSequence::parse(&"1".repeat(65)).is_err());
        assert_eq!(n("0"), ConnectionSequence::default());
    }
}
