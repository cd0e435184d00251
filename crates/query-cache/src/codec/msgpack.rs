//! MessagePack through serde, and the codecs of containers of shared types (feature
//! `msgpack`).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DecodeFn, EncodeFn, SharedCodec};
use crate::Cacheable;

impl<T: Serialize + DeserializeOwned> SharedCodec<T> {
    /// MessagePack with named struct fields, under the schema `name` at `version`.
    ///
    /// `name` should be unique to the type across everything that shares one Redis key
    /// prefix (a crate path such as `"my-crate/Availability"` works well).
    #[cfg_attr(docsrs, doc(cfg(feature = "msgpack")))]
    pub const fn msgpack(name: &'static str, version: u32) -> Self {
        SharedCodec {
            name,
            fingerprint: mix(fnv1a(FNV_OFFSET, name.as_bytes()), version as u64),
            encode_fn: encode_serde::<T>,
            decode_fn: decode_serde::<T>,
            _type: PhantomData,
        }
    }
}

impl<T> SharedCodec<T> {
    /// A codec for a container of `T`, with `kind` folded into the fingerprint.
    const fn derived<U>(
        inner: &SharedCodec<T>,
        kind: &'static str,
        encode_fn: EncodeFn<U>,
        decode_fn: DecodeFn<U>,
    ) -> SharedCodec<U> {
        SharedCodec {
            name: inner.name,
            fingerprint: mix(fnv1a(FNV_OFFSET, kind.as_bytes()), inner.fingerprint),
            encode_fn,
            decode_fn,
            _type: PhantomData,
        }
    }
}

fn encode_serde<T: Serialize>(value: &T, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    rmp_serde::encode::write_named(out, value).map_err(|e| e.to_string())
}

fn decode_serde<T: DeserializeOwned>(input: &mut &[u8]) -> std::result::Result<T, String> {
    // Reads exactly one value and leaves `input` just past it, so containers can decode
    // their elements one after another.
    let mut deserializer = rmp_serde::Deserializer::new(input);
    T::deserialize(&mut deserializer).map_err(|e| e.to_string())
}

fn element_codec<T: Cacheable>() -> std::result::Result<SharedCodec<T>, String> {
    T::shared_codec().ok_or_else(|| format!("{} has no shared codec", std::any::type_name::<T>()))
}

fn write_len(out: &mut Vec<u8>, len: usize) -> std::result::Result<(), String> {
    let len = u32::try_from(len).map_err(|_| "more than 2^32 elements".to_owned())?;
    rmp::encode::write_array_len(out, len).map_err(|e| e.to_string())?;
    Ok(())
}

fn read_len(input: &mut &[u8]) -> std::result::Result<usize, String> {
    let len = rmp::decode::read_array_len(input).map_err(|e| e.to_string())?;
    // Each element takes at least one byte: a larger length is corrupt, and must not
    // drive a huge allocation.
    let len = len as usize;
    if len > input.len() {
        return Err(format!("array of {len} elements in {} bytes", input.len()));
    }
    Ok(len)
}

fn encode_seq<'a, T: Cacheable>(
    items: impl ExactSizeIterator<Item = &'a T>,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let codec = element_codec::<T>()?;
    write_len(out, items.len())?;
    items
        .into_iter()
        .try_for_each(|item| (codec.encode_fn)(item, out))
}

fn decode_seq<T: Cacheable>(input: &mut &[u8]) -> std::result::Result<Vec<T>, String> {
    let codec = element_codec::<T>()?;
    let len = read_len(input)?;
    (0..len).map(|_| (codec.decode_fn)(input)).collect()
}

#[allow(clippy::ptr_arg)] // the signature every `Vec<T>` codec function shares
fn encode_vec<T: Cacheable>(value: &Vec<T>, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    encode_seq(value.iter(), out)
}

#[allow(clippy::borrowed_box)] // the signature every `Box<[T]>` codec function shares
fn encode_slice<T: Cacheable>(
    value: &Box<[T]>,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    encode_seq(value.iter(), out)
}

fn decode_slice<T: Cacheable>(input: &mut &[u8]) -> std::result::Result<Box<[T]>, String> {
    decode_seq(input).map(Vec::into_boxed_slice)
}

/// `None` is an empty array and `Some(x)` a one-element array, so that `Some(None)` and
/// `None` stay distinct (MessagePack's `nil` would merge them).
fn encode_option<T: Cacheable>(
    value: &Option<T>,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    encode_seq(value.iter(), out)
}

fn decode_option<T: Cacheable>(input: &mut &[u8]) -> std::result::Result<Option<T>, String> {
    let mut items = decode_seq::<T>(input)?;
    match items.len() {
        0 | 1 => Ok(items.pop()),
        n => Err(format!("an option of {n} elements")),
    }
}

#[allow(clippy::borrowed_box)] // the signature every `Box<T>` codec function shares
fn encode_boxed<T: Cacheable>(
    value: &Box<T>,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    (element_codec::<T>()?.encode_fn)(value, out)
}

fn decode_boxed<T: Cacheable>(input: &mut &[u8]) -> std::result::Result<Box<T>, String> {
    (element_codec::<T>()?.decode_fn)(input).map(Box::new)
}

fn encode_arc<T: Cacheable>(value: &Arc<T>, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    (element_codec::<T>()?.encode_fn)(value, out)
}

fn decode_arc<T: Cacheable>(input: &mut &[u8]) -> std::result::Result<Arc<T>, String> {
    (element_codec::<T>()?.decode_fn)(input).map(Arc::new)
}

fn encode_btree<K: Cacheable, V: Cacheable>(
    value: &BTreeMap<K, V>,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let (key, val) = (element_codec::<K>()?, element_codec::<V>()?);
    write_len(out, value.len())?;
    value.iter().try_for_each(|(k, v)| {
        (key.encode_fn)(k, out)?;
        (val.encode_fn)(v, out)
    })
}

fn decode_btree<K: Cacheable + Ord, V: Cacheable>(
    input: &mut &[u8],
) -> std::result::Result<BTreeMap<K, V>, String> {
    let (key, val) = (element_codec::<K>()?, element_codec::<V>()?);
    let len = read_len(input)?;
    (0..len)
        .map(|_| Ok(((key.decode_fn)(input)?, (val.decode_fn)(input)?)))
        .collect()
}

impl<T: Cacheable> SharedCodec<T> {
    pub(crate) fn vec(&self) -> SharedCodec<Vec<T>> {
        Self::derived(self, "Vec", encode_vec::<T>, decode_seq::<T>)
    }

    pub(crate) fn boxed_slice(&self) -> SharedCodec<Box<[T]>> {
        // Same bytes as a `Vec<T>`: readers of either type may share them.
        Self::derived(self, "Vec", encode_slice::<T>, decode_slice::<T>)
    }

    pub(crate) fn option(&self) -> SharedCodec<Option<T>> {
        Self::derived(self, "Option", encode_option::<T>, decode_option::<T>)
    }

    pub(crate) fn boxed(&self) -> SharedCodec<Box<T>> {
        // A box is its content.
        SharedCodec {
            name: self.name,
            fingerprint: self.fingerprint,
            encode_fn: encode_boxed::<T>,
            decode_fn: decode_boxed::<T>,
            _type: PhantomData,
        }
    }

    pub(crate) fn arc(&self) -> SharedCodec<Arc<T>> {
        SharedCodec {
            name: self.name,
            fingerprint: self.fingerprint,
            encode_fn: encode_arc::<T>,
            decode_fn: decode_arc::<T>,
            _type: PhantomData,
        }
    }
}

pub(crate) fn btree_map<K: Cacheable + Ord, V: Cacheable>() -> Option<SharedCodec<BTreeMap<K, V>>> {
    let (key, value) = (K::shared_codec()?, V::shared_codec()?);
    Some(SharedCodec {
        name: value.name,
        fingerprint: mix(
            mix(fnv1a(FNV_OFFSET, b"BTreeMap"), key.fingerprint),
            value.fingerprint,
        ),
        encode_fn: encode_btree::<K, V>,
        decode_fn: decode_btree::<K, V>,
        _type: PhantomData,
    })
}

macro_rules! tuple_codec {
    ($fn:ident, $enc:ident, $dec:ident, $len:literal, $($name:ident),+) => {
        fn $enc<$($name: Cacheable),+>(
            value: &($($name,)+),
            out: &mut Vec<u8>,
        ) -> std::result::Result<(), String> {
            #[allow(non_snake_case)]
            let ($($name,)+) = value;
            write_len(out, $len)?;
            $((element_codec::<$name>()?.encode_fn)($name, out)?;)+
            Ok(())
        }

        fn $dec<$($name: Cacheable),+>(
            input: &mut &[u8],
        ) -> std::result::Result<($($name,)+), String> {
            let len = read_len(input)?;
            if len != $len {
                return Err(format!("a tuple of {len} elements, expected {}", $len));
            }
            Ok(($((element_codec::<$name>()?.decode_fn)(input)?,)+))
        }

        pub(crate) fn $fn<$($name: Cacheable),+>() -> Option<SharedCodec<($($name,)+)>> {
            let mut fingerprint = fnv1a(FNV_OFFSET, b"Tuple");
            $(fingerprint = mix(fingerprint, $name::shared_codec()?.fingerprint);)+
            Some(SharedCodec {
                name: "tuple",
                fingerprint,
                encode_fn: $enc::<$($name),+>,
                decode_fn: $dec::<$($name),+>,
                _type: PhantomData,
            })
        }
    };
}

tuple_codec!(tuple2, encode_tuple2, decode_tuple2, 2, A, B);
tuple_codec!(tuple3, encode_tuple3, decode_tuple3, 3, A, B, C);
tuple_codec!(tuple4, encode_tuple4, decode_tuple4, 4, A, B, C, D);

pub(super) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a: stable across processes, versions and platforms, unlike the std hashers.
pub(super) const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

pub(super) const fn mix(hash: u64, value: u64) -> u64 {
    fnv1a(hash, &value.to_be_bytes())
}
