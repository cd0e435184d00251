//! Invalidations and the pub/sub message that carries them to the other instances.

use serde::{Deserialize, Serialize};

/// One invalidation, as applied to Redis and to the other instances' L1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Invalidation {
    Key(String),
    Tag(String),
    Prefix(String),
    All,
}

/// What is published after a batch of invalidations was applied to Redis. `origin` lets
/// the sender skip its own message: it applied the batch to its L1 already, and doing it
/// again would drop values loaded after the invalidation. Every receiver confirms `seq` (the
/// batch's last ticket) on the origin's acknowledgement channel once the batch is applied to
/// its L1, which is what `flush_invalidations` waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Message {
    pub(crate) origin: u64,
    pub(crate) seq: u64,
    pub(crate) invalidations: Vec<Invalidation>,
}

/// The channel on which the instance `origin` receives the confirmations of its messages.
pub(crate) fn ack_channel(prefix: &str, origin: u64) -> String {
    format!("{prefix}:acks:{origin:016x}")
}

impl Message {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Plain data of strings: encoding cannot fail.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Message> {
        rmp_serde::from_slice(bytes).ok()
    }
}

/// Escapes the characters that are special in a Redis `MATCH` glob.
pub(crate) fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let message = Message {
            origin: 42,
            seq: 7,
            invalidations: vec![
                Invalidation::Key("availability:7\n".into()),
                Invalidation::Tag("room-type:7".into()),
                Invalidation::Prefix("report:".into()),
                Invalidation::All,
            ],
        };
        assert_eq!(Message::decode(&message.encode()), Some(message));
        assert_eq!(Message::decode(b"garbage"), None);
    }

    #[test]
    fn globs_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("report:2026-01"), "report:2026\\-01");
    }
}
