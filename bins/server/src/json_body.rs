//! JSON bodies of cached values, serialised once per value instead of once per request.
//!
//! A cache hit hands every request the same `Arc` until the entry expires or is invalidated,
//! and the value behind an `Arc` never changes, so the body written for one request is the body
//! of every other request that gets that `Arc`. [`JsonBodies`] keeps the last bodies it wrote
//! beside a weak reference to their value: a hit copies the body's handle instead of
//! serialising the value again (for `GET /api/availability` without a room type, 20 entries of
//! six fields with two dates each, serialising was the largest cost of a cached answer:
//! docs/PERFORMANCE.md).

use std::sync::{Arc, Mutex, PoisonError, Weak};

use axum::{
    body::Bytes,
    http::{HeaderValue, StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::error::ApiError;

/// Bodies kept per kind of value: enough for the hot keys of a kind, small enough that what
/// the weak references keep (an `Arc`'s counts and the value's own fields, not what it owns)
/// and the bodies stay a few hundred KiB at most.
const SLOTS: usize = 64;

/// The last JSON bodies written for values of type `T`, by the value's identity (its `Arc`).
///
/// A `static` per route and type: the identity of an `Arc` is unique in the process, so
/// servers sharing a process (tests) never see each other's bodies.
pub struct JsonBodies<T> {
    slots: [Mutex<Option<Written<T>>>; SLOTS],
}

/// A body and the value it was written from.
struct Written<T> {
    /// Keeps the value's allocation, so no other `Arc` can have this address while it is
    /// here; comparing addresses is then comparing identities.
    value: Weak<T>,
    body: Bytes,
}

impl<T: Serialize> JsonBodies<T> {
    /// No bodies yet.
    pub const fn new() -> Self {
        Self {
            slots: [const { Mutex::new(None) }; SLOTS],
        }
    }

    /// `value` as a `200 OK` JSON response, serialised only when this `Arc` was not seen last in
    /// its slot.
    pub fn response(&self, value: &Arc<T>) -> Response {
        match self.body(value) {
            Ok(body) => (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            )
                .into_response(),
            Err(err) => {
                tracing::error!(error = %err, "could not serialise a response body");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
                .into_response()
            }
        }
    }

    fn body(&self, value: &Arc<T>) -> serde_json::Result<Bytes> {
        let address = Arc::as_ptr(value);
        // Fibonacci hashing of the address; its low bits are alignment, always zero.
        let slot =
            &self.slots[((address as usize).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) % SLOTS];
        if let Some(written) = slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|written| std::ptr::eq(written.value.as_ptr(), address))
        {
            return Ok(written.body.clone());
        }
        let body = Bytes::from(serde_json::to_vec(value.as_ref())?);
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Written {
            value: Arc::downgrade(value),
            body: body.clone(),
        });
        Ok(body)
    }
}

impl<T: Serialize> Default for JsonBodies<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(bodies: &JsonBodies<Vec<u32>>, value: &Arc<Vec<u32>>) -> Vec<u8> {
        bodies.body(value).map(|b| b.to_vec()).unwrap_or_default()
    }

    #[test]
    fn a_value_is_written_once_and_every_new_value_again() {
        let bodies = JsonBodies::new();
        let first = Arc::new(vec![1, 2, 3]);
        let once = bodies.body(&first).ok();
        let twice = bodies.body(&Arc::clone(&first)).ok();
        assert_eq!(once.as_deref(), Some(&b"[1,2,3]"[..]));
        // The same allocation, not a copy: the second answer did not serialise.
        assert_eq!(
            once.map(|b| b.as_ptr()),
            twice.map(|b| b.as_ptr()),
            "the same Arc reuses its body"
        );
        // An equal value in another Arc, and values made after the first was dropped (which
        // may be given its memory by the allocator), each get their own body.
        assert_eq!(body_of(&bodies, &Arc::new(vec![1, 2, 3])), b"[1,2,3]");
        drop(first);
        for n in 0..100 {
            let value = Arc::new(vec![n]);
            assert_eq!(body_of(&bodies, &value), format!("[{n}]").as_bytes());
        }
    }
}
