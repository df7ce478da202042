//! Pseudonymization and a business rule, the two things users most often
//! add to the seed's enrichment:
//!
//! - the event's `uuid` (a user or device id, personal data under GDPR) is
//!   replaced by `user_key`, HMAC-SHA-256 of it under a key fixed at build
//!   time, so that analysts can join and count by user without seeing who;
//! - an event whose time is more than [`MAX_LATE_MS`] before, or more than
//!   [`MAX_AHEAD_MS`] after, its Kafka timestamp goes to the dropped output
//!   with a reason that names the rule and the numbers.
//!
//! Decoding and validation are the `enrich` plugin's, reused as a library.

use std::sync::LazyLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[cfg(target_family = "wasm")]
mod component;

pub const NAME: &str = "pseudonymize";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The HMAC key. Build with `PSEUDONYMIZE_KEY=...` for real data: anyone
/// with the key can test a guessed id against a `user_key`. The key is in
/// the component, so a new key is a new plugin build (and sha256).
pub const KEY: &str = match option_env!("PSEUDONYMIZE_KEY") {
    Some(key) => key,
    None => "lineage-demo-key",
};

/// Events older than this relative to their Kafka timestamp are late.
pub const MAX_LATE_MS: i64 = 7 * 24 * 3600 * 1000;
/// Events newer than this relative to their Kafka timestamp come from a
/// clock that is wrong.
pub const MAX_AHEAD_MS: i64 = 3600 * 1000;

/// `user_key` is this many hex digits (128 bits) of the HMAC.
const KEY_DIGITS: usize = 32;

/// A kept row: (user_key, timestamp).
pub fn pseudonymize(
    value: Option<&[u8]>,
    kafka_timestamp: Option<i64>,
) -> Result<(String, i64), String> {
    pseudonymize_with(value, guest_enrich::Writer::Same, kafka_timestamp)
}

/// [`pseudonymize`] for a value written with `writer`.
pub fn pseudonymize_with(
    value: Option<&[u8]>,
    writer: guest_enrich::Writer,
    kafka_timestamp: Option<i64>,
) -> Result<(String, i64), String> {
    let event = guest_enrich::enrich_with(value, writer)?;
    if let Some(kafka) = kafka_timestamp {
        let ahead = event.timestamp - kafka;
        if ahead > MAX_AHEAD_MS {
            return Err(format!(
                "rule future-event: event time is {} after the Kafka timestamp (limit {})",
                span(ahead),
                span(MAX_AHEAD_MS)
            ));
        }
        if -ahead > MAX_LATE_MS {
            return Err(format!(
                "rule late-event: event time is {} before the Kafka timestamp (limit {})",
                span(-ahead),
                span(MAX_LATE_MS)
            ));
        }
    }
    Ok((user_key(&event.uuid), event.timestamp))
}

/// The key's inner and outer pads hashed once; each record clones it
/// (half the SHA-256 work of keying a new HMAC per record).
static KEYED: LazyLock<Hmac<Sha256>> =
    LazyLock::new(|| Hmac::new_from_slice(KEY.as_bytes()).expect("HMAC takes any key"));

pub fn user_key(id: &str) -> String {
    let mut mac = KEYED.clone();
    mac.update(id.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(KEY_DIGITS);
    for byte in &digest[..KEY_DIGITS / 2] {
        out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    out
}

/// `3d 4h`, `2h 5m`, `12m 3s`, `950ms`.
fn span(ms: i64) -> String {
    let (d, h, m, s) = (
        ms / 86_400_000,
        ms / 3_600_000 % 24,
        ms / 60_000 % 60,
        ms / 1000 % 60,
    );
    match (d, h, m) {
        (0, 0, 0) if s == 0 => format!("{ms}ms"),
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(uuid: &str, timestamp: i64) -> Vec<u8> {
        // Avro: the string's zigzag length, its bytes, the zigzag long.
        fn zigzag(n: i64, out: &mut Vec<u8>) {
            let mut z = ((n << 1) ^ (n >> 63)) as u64;
            while z >= 0x80 {
                out.push((z as u8) | 0x80);
                z >>= 7;
            }
            out.push(z as u8);
        }
        let mut out = Vec::new();
        zigzag(uuid.len() as i64, &mut out);
        out.extend_from_slice(uuid.as_bytes());
        zigzag(timestamp, &mut out);
        out
    }

    const UUID: &str = "6f1c2a9e-5b7d-4c1e-9a3f-2d8e4b6c0a1f";
    const TS: i64 = 1_732_550_400_000;

    #[test]
    fn the_id_becomes_a_stable_keyed_hash() {
        let (key, ts) = pseudonymize(Some(&event(UUID, TS)), Some(TS)).unwrap();
        assert_eq!(ts, TS);
        assert_eq!(key.len(), 32);
        assert!(!key.contains("6f1c2a9e"));
        assert_eq!(key, user_key(UUID), "same id, same key");
        assert_ne!(key, user_key("0d6f3c2b-8e1a-4f5d-b7c9-3a2e1f0d9c8b"));
    }

    #[test]
    fn late_and_future_events_are_dropped_with_the_rule_and_the_numbers() {
        let late = TS - MAX_LATE_MS - 3 * 3_600_000;
        assert_eq!(
            pseudonymize(Some(&event(UUID, late)), Some(TS)).unwrap_err(),
            "rule late-event: event time is 7d 3h before the Kafka timestamp (limit 7d 0h)"
        );
        assert_eq!(
            pseudonymize(Some(&event(UUID, TS + 2 * 3_600_000 + 60_000)), Some(TS)).unwrap_err(),
            "rule future-event: event time is 2h 1m after the Kafka timestamp (limit 1h 0m)"
        );
        // At the limits, and without a Kafka timestamp, the rule passes.
        assert!(pseudonymize(Some(&event(UUID, TS + MAX_AHEAD_MS)), Some(TS)).is_ok());
        assert!(pseudonymize(Some(&event(UUID, TS - MAX_LATE_MS)), Some(TS)).is_ok());
        assert!(pseudonymize(Some(&event(UUID, late)), None).is_ok());
    }

    #[test]
    fn invalid_events_keep_the_enrich_reasons() {
        assert_eq!(
            pseudonymize(Some(b""), Some(TS)).unwrap_err(),
            "empty value"
        );
        assert!(
            pseudonymize(Some(&event("not-a-uuid", TS)), Some(TS))
                .unwrap_err()
                .starts_with("uuid: ")
        );
    }
}
