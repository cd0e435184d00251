//! How values cross the shared (L2) tier: a versioned MessagePack envelope.
//!
//! Every value stored in the shared tier is one envelope:
//!
//! | bytes | content |
//! | --- | --- |
//! | 1 | envelope format ([`FORMAT`]) |
//! | 8 | schema fingerprint (big endian), from the type's schema name and version |
//! | rest | the value in MessagePack, structs as maps with their field names |
//!
//! A reader checks the format byte and the fingerprint before it decodes anything, so bytes
//! written by another type, another schema version or another envelope format are refused
//! ([`Error::SchemaMismatch`]) and never read as the wrong value. Structs are written with
//! their field names, so a field added, removed or retyped without a version bump fails to
//! decode ([`Error::Decode`]) instead of shifting values between fields; `#[serde(flatten)]`,
//! `#[serde(try_from)]` and `skip_serializing_if` round-trip because MessagePack is
//! self-describing.

use std::marker::PhantomData;

use crate::{Error, Result};

#[cfg(feature = "msgpack")]
mod msgpack;
#[cfg(feature = "msgpack")]
pub(crate) use msgpack::{btree_map, tuple2, tuple3, tuple4};

/// Version of the envelope layout. Bumping it makes every stored value a miss.
pub(crate) const FORMAT: u8 = 1;
const HEADER: usize = 9;

type EncodeFn<T> = fn(&T, &mut Vec<u8>) -> std::result::Result<(), String>;
type DecodeFn<T> = fn(&mut &[u8]) -> std::result::Result<T, String>;

/// How values of type `T` are written to and read from the shared (L2) tier: a schema
/// fingerprint plus MessagePack encoding.
///
/// A type opts in to the shared tier by returning a codec from
/// [`Cacheable::shared_codec`](crate::Cacheable::shared_codec); without one its values
/// stay in the process (L1) only. Build it with `SharedCodec::msgpack` (feature
/// `msgpack`, which the `redis` feature implies), naming the schema and its version.
/// A library can opt its types in with `msgpack` alone, leaving the choice of a Redis
/// tier to the service that uses it. **Bump the
/// version whenever the meaning or shape of the type changes** (a field renamed, retyped,
/// or whose unit changed): old bytes are then a miss instead of a wrong value. Containers
/// of shared types (`Vec<T>`, `Option<T>`, `Box<[T]>`, `Arc<T>`, `BTreeMap<K, V>`,
/// tuples) are shared automatically with a fingerprint derived from their elements'.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "msgpack")]
/// # fn main() -> Result<(), query_cache::Error> {
/// use query_cache::{Cacheable, SharedCodec};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Availability { room_type: u32, free_rooms: u32 }
///
/// impl Cacheable for Availability {
///     fn shared_codec() -> Option<SharedCodec<Self>> {
///         Some(SharedCodec::msgpack("example/availability", 1))
///     }
/// }
///
/// let value = Availability { room_type: 7, free_rooms: 3 };
/// let codec = Availability::shared_codec().unwrap();
/// let bytes = codec.encode(&value)?;
/// assert_eq!(codec.decode(&bytes)?, value);
///
/// // A list of them is shared too, under its own fingerprint.
/// let list = <Vec<Availability>>::shared_codec().unwrap();
/// assert_ne!(list.fingerprint(), codec.fingerprint());
///
/// // Version 2 of the schema refuses version 1's bytes.
/// let v2 = SharedCodec::<Availability>::msgpack("example/availability", 2);
/// assert!(matches!(v2.decode(&bytes), Err(query_cache::Error::SchemaMismatch { .. })));
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "msgpack"))]
/// # fn main() {}
/// ```
pub struct SharedCodec<T> {
    name: &'static str,
    fingerprint: u64,
    encode_fn: EncodeFn<T>,
    decode_fn: DecodeFn<T>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for SharedCodec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SharedCodec<T> {}

impl<T> std::fmt::Debug for SharedCodec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCodec")
            .field("name", &self.name)
            .field("fingerprint", &format_args!("{:016x}", self.fingerprint))
            .finish()
    }
}

impl<T> SharedCodec<T> {
    /// The schema name this codec was built with (containers report their element's).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The 64-bit fingerprint written in every envelope: the schema name and version, and
    /// for containers the container kind.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Encodes `value` into an envelope.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the value's `Serialize` implementation fails.
    pub fn encode(&self, value: &T) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64);
        out.push(FORMAT);
        out.extend_from_slice(&self.fingerprint.to_be_bytes());
        (self.encode_fn)(value, &mut out).map_err(|reason| Error::Encode { reason })?;
        Ok(out)
    }

    /// Decodes an envelope written by [`encode`](Self::encode) with the same schema.
    ///
    /// # Errors
    ///
    /// - [`Error::SchemaMismatch`] if the bytes were written with another envelope format,
    ///   schema name, version or container kind;
    /// - [`Error::Decode`] if they carry this schema but do not decode as `T` (or carry
    ///   trailing bytes).
    pub fn decode(&self, bytes: &[u8]) -> Result<T> {
        let found = envelope_fingerprint(bytes);
        if found != Some(self.fingerprint) {
            return Err(Error::SchemaMismatch {
                expected: self.fingerprint,
                found,
            });
        }
        let mut payload = &bytes[HEADER..];
        let value = (self.decode_fn)(&mut payload).map_err(|reason| Error::Decode { reason })?;
        if payload.is_empty() {
            Ok(value)
        } else {
            Err(Error::Decode {
                reason: format!("{} bytes after the value", payload.len()),
            })
        }
    }
}

/// The fingerprint of an envelope, or `None` if it is not one of the current format.
fn envelope_fingerprint(bytes: &[u8]) -> Option<u64> {
    let header: [u8; 8] = bytes.get(1..HEADER)?.try_into().ok()?;
    (bytes.first() == Some(&FORMAT)).then(|| u64::from_be_bytes(header))
}

#[cfg(all(test, feature = "msgpack"))]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Arc;

    use serde::{Deserialize, Serialize};

    use super::msgpack::{FNV_OFFSET, fnv1a, mix};
    use super::*;
    use crate::Cacheable;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        id: i64,
        room_name: String,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Flattened {
        #[serde(flatten)]
        inner: Inner,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        extra: Option<u32>,
        rate: f64,
    }
    impl Cacheable for Flattened {
        fn shared_codec() -> Option<SharedCodec<Self>> {
            Some(SharedCodec::msgpack("test/flattened", 1))
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    #[serde(try_from = "i64", into = "i32")]
    struct Positive(i32);
    impl TryFrom<i64> for Positive {
        type Error = String;
        fn try_from(v: i64) -> std::result::Result<Self, String> {
            i32::try_from(v)
                .ok()
                .filter(|v| *v > 0)
                .map(Positive)
                .ok_or_else(|| format!("{v} is not positive"))
        }
    }
    impl From<Positive> for i32 {
        fn from(p: Positive) -> i32 {
            p.0
        }
    }
    impl Cacheable for Positive {
        fn shared_codec() -> Option<SharedCodec<Self>> {
            Some(SharedCodec::msgpack("test/positive", 1))
        }
    }

    fn sample() -> Flattened {
        Flattened {
            inner: Inner {
                id: 7,
                room_name: "Deluxe".into(),
            },
            extra: None,
            rate: 0.625,
        }
    }

    #[test]
    fn flatten_skip_and_try_from_round_trip() {
        let codec = Flattened::shared_codec().unwrap();
        let value = sample();
        assert_eq!(codec.decode(&codec.encode(&value).unwrap()).unwrap(), value);
        let with_extra = Flattened {
            extra: Some(3),
            ..sample()
        };
        assert_eq!(
            codec.decode(&codec.encode(&with_extra).unwrap()).unwrap(),
            with_extra
        );
        let positive = Positive::shared_codec().unwrap();
        assert_eq!(
            positive
                .decode(&positive.encode(&Positive(5)).unwrap())
                .unwrap(),
            Positive(5)
        );
        // `try_from` still validates what it reads.
        let zero = SharedCodec::<i32>::msgpack("test/positive", 1)
            .encode(&0)
            .unwrap();
        assert!(matches!(positive.decode(&zero), Err(Error::Decode { .. })));
    }

    #[test]
    fn containers_round_trip_and_keep_some_none_apart() {
        let vec = <Vec<Flattened>>::shared_codec().unwrap();
        let values = vec![sample(), sample()];
        assert_eq!(vec.decode(&vec.encode(&values).unwrap()).unwrap(), values);
        let nested = <Option<Option<u64>>>::shared_codec().unwrap();
        for value in [None, Some(None), Some(Some(4))] {
            assert_eq!(
                nested.decode(&nested.encode(&value).unwrap()).unwrap(),
                value
            );
        }
        let map = <BTreeMap<String, Vec<u32>>>::shared_codec().unwrap();
        let value = BTreeMap::from([("a".to_owned(), vec![1, 2]), ("b".to_owned(), vec![])]);
        assert_eq!(map.decode(&map.encode(&value).unwrap()).unwrap(), value);
        let tuple = <(u32, String, Arc<Flattened>)>::shared_codec().unwrap();
        let value = (1, "x".to_owned(), Arc::new(sample()));
        assert_eq!(tuple.decode(&tuple.encode(&value).unwrap()).unwrap(), value);
        // A boxed slice reads a vector's bytes: same layout, same fingerprint.
        let slice = <Box<[Flattened]>>::shared_codec().unwrap();
        assert_eq!(
            &*slice.decode(&vec.encode(&values).unwrap()).unwrap(),
            values.as_slice()
        );
    }

    #[test]
    fn other_types_and_versions_are_refused() {
        let value = sample();
        let bytes = Flattened::shared_codec().unwrap().encode(&value).unwrap();
        let v2 = SharedCodec::<Flattened>::msgpack("test/flattened", 2);
        assert!(matches!(
            v2.decode(&bytes),
            Err(Error::SchemaMismatch { found: Some(_), .. })
        ));
        // A list of the type is not the type.
        assert!(matches!(
            <Vec<Flattened>>::shared_codec().unwrap().decode(&bytes),
            Err(Error::SchemaMismatch { .. })
        ));
        // Another envelope format, truncated or foreign bytes.
        let mut other_format = bytes.clone();
        other_format[0] = FORMAT + 1;
        let codec = Flattened::shared_codec().unwrap();
        for bad in [&other_format[..], &bytes[..4], b"hello world"] {
            assert!(matches!(
                codec.decode(bad),
                Err(Error::SchemaMismatch { found: None, .. })
            ));
        }
        // Right schema, wrong shape: a decode error, not a value.
        let wrong = SharedCodec::<Inner>::msgpack("test/flattened", 1)
            .encode(&Inner {
                id: 1,
                room_name: "x".into(),
            })
            .unwrap();
        assert!(matches!(codec.decode(&wrong), Err(Error::Decode { .. })));
        let mut trailing = bytes.clone();
        trailing.push(0xc0);
        assert!(matches!(codec.decode(&trailing), Err(Error::Decode { .. })));
    }

    #[test]
    fn types_without_a_codec_are_not_shared() {
        struct Local;
        impl Cacheable for Local {}
        assert!(Local::shared_codec().is_none());
        assert!(<Vec<Local>>::shared_codec().is_none());
        assert!(<HashMap<String, u32>>::shared_codec().is_none());
        assert!(<(u32, Local)>::shared_codec().is_none());
    }

    #[test]
    fn fingerprints_are_stable() {
        // Written to Redis by every instance: must never change between builds.
        assert_eq!(
            SharedCodec::<u64>::msgpack("std/u64", 1).fingerprint(),
            mix(fnv1a(FNV_OFFSET, b"std/u64"), 1)
        );
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
