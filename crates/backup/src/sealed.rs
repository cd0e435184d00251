//! Sealed documents: JSON that carries the SHA-256 of its own bytes, so every read of a
//! manifest, identity or record checks it, and the checksums they hold (of data files, of
//! segments) are themselves protected.
//!
//! The seal is the first field, `"sealed_sha256"`: the SHA-256 of the document's exact bytes
//! with the seal's 64 hex digits replaced by zeros. The document stays plain, pretty JSON
//! (`jq` reads it); any changed byte, including in the seal, makes it fail to open.

use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

/// The seal's field name.
pub(crate) const FIELD: &str = "sealed_sha256";
const PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Serialize)]
struct Sealed<'a, T> {
    sealed_sha256: &'static str,
    #[serde(flatten)]
    document: &'a T,
}

/// Serialises `document` (a struct or map) as sealed, pretty JSON.
pub(crate) fn seal<T: Serialize>(document: &T) -> Result<Vec<u8>, String> {
    let mut bytes = serde_json::to_vec_pretty(&Sealed {
        sealed_sha256: PLACEHOLDER,
        document,
    })
    .map_err(|e| e.to_string())?;
    let at = seal_position(&bytes, PLACEHOLDER)
        .ok_or_else(|| "the seal field is missing from the serialised document".to_owned())?;
    let digest = hex::encode(Sha256::digest(&bytes));
    bytes[at..at + 64].copy_from_slice(digest.as_bytes());
    Ok(bytes)
}

/// What [`open`] found wrong.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Broken {
    /// Not JSON, or not an object.
    NotJson(String),
    /// No seal: a document from before seals (the caller decides whether that is acceptable).
    Unsealed,
    /// The seal does not match the bytes: the document changed after it was written.
    Mismatch {
        /// The seal.
        expected: String,
        /// The hash of the bytes.
        actual: String,
    },
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotJson(e) => write!(f, "not JSON: {e}"),
            Self::Unsealed => f.write_str("it has no seal (sealed_sha256)"),
            Self::Mismatch { expected, actual } => write!(
                f,
                "its content does not match its seal (sealed {expected}, content {actual}): it \
                 changed after it was written"
            ),
        }
    }
}

/// Checks the seal of `bytes` and returns the document as a JSON value, seal removed (the
/// caller checks its format version before turning it into a type).
pub(crate) fn open_value(bytes: &[u8]) -> Result<serde_json::Value, Broken> {
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Broken::NotJson(e.to_string()))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| Broken::NotJson("not an object".to_owned()))?;
    let Some(serde_json::Value::String(expected)) = object.remove(FIELD) else {
        return Err(Broken::Unsealed);
    };
    let actual = match seal_position(bytes, &expected) {
        Some(at) if expected.len() == 64 => {
            let mut zeroed = bytes.to_vec();
            zeroed[at..at + 64].copy_from_slice(PLACEHOLDER.as_bytes());
            hex::encode(Sha256::digest(&zeroed))
        }
        _ => hex::encode(Sha256::digest(bytes)),
    };
    if actual != expected {
        return Err(Broken::Mismatch { expected, actual });
    }
    Ok(value)
}

/// Checks the seal and deserialises.
pub(crate) fn open<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let value = open_value(bytes).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| format!("bad field: {e}"))
}

/// Where the seal's hex digits start: the first `"sealed_sha256": "<seal>"`.
fn seal_position(bytes: &[u8], seal: &str) -> Option<usize> {
    let needle = format!("\"{FIELD}\": \"{seal}\"");
    bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .map(|at| at + needle.len() - seal.len() - 1)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_sealed_document_opens_and_any_changed_byte_breaks_it() {
        let doc = BTreeMap::from([("name", "hotel"), ("size", "42")]);
        let bytes = seal(&doc).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\n  \"sealed_sha256\": \""), "{text}");
        let back: BTreeMap<String, String> = open(&bytes).unwrap();
        assert_eq!(back["size"], "42");

        for at in [20, text.find("42").unwrap(), bytes.len() - 2] {
            let mut changed = bytes.clone();
            changed[at] ^= 0x01;
            assert!(
                open::<BTreeMap<String, String>>(&changed).is_err(),
                "byte {at}"
            );
        }
        let unsealed = serde_json::to_vec(&doc).unwrap();
        assert_eq!(open_value(&unsealed).unwrap_err(), Broken::Unsealed);
    }
}
