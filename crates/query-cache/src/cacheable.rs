//! The opt-in marker for values the cache may hold.

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::mem::size_of;
use std::sync::Arc;

use crate::SharedCodec;
#[cfg(feature = "msgpack")]
use crate::codec;

/// A type whose values may be stored in a [`QueryCache`](crate::QueryCache).
///
/// Caching is opt-in per type: a value can be cached only if its type implements this
/// trait, so putting a new type in the cache is a visible decision in code review.
///
/// # What must never implement `Cacheable`
///
/// A cache entry outlives the request that created it and is served to other requests.
/// Never implement `Cacheable` for types that carry:
///
/// - authentication or session **tokens**, API keys, refresh tokens;
/// - **passwords** or password hashes;
/// - one-time passwords (**OTPs**), verification or reset codes;
/// - **payment data**: card numbers, CVCs, bank details, payment intents;
/// - any other per-user secret.
///
/// Good candidates are public, shared read models: room types, hotel rules,
/// availability results, reports.
///
/// The implementations provided here cover primitives, `String` and the standard
/// containers of `Cacheable` values so that `Vec<RoomType>` or `Option<Report>` work once
/// the domain type opts in. A bare `String` can carry anything: prefer caching a domain
/// type, so that what is cached is named.
///
/// # Weight
///
/// [`weight`](Cacheable::weight) is the approximate size of the value in bytes, used only
/// when the cache has a weight bound ([`QueryCacheBuilder::max_weight`](crate::QueryCacheBuilder::max_weight)).
/// The default is the shallow size of the value; types that own heap data should
/// override it.
///
/// # Sharing through Redis
///
/// With the `redis` feature a cache can have a shared tier (L2) behind the in-process one.
/// Values cross it only if their type says how, by returning a [`SharedCodec`] from
/// [`shared_codec`](Cacheable::shared_codec) (a schema name and version plus MessagePack
/// through serde, feature `msgpack`). The default is `None`: values of that type stay in
/// the process that loaded them, and are counted in
/// [`L2Stats::unshared_loads`](crate::L2Stats::unshared_loads). With the `msgpack`
/// feature, primitives, `String`, `Box<str>` and the containers above (except the hash
/// maps and sets, whose hasher may not be constructible) are shared when their elements
/// are.
///
/// # Examples
///
/// ```
/// use query_cache::Cacheable;
///
/// struct RoomType {
///     name: String,
///     beds: u8,
/// }
///
/// impl Cacheable for RoomType {
///     fn weight(&self) -> usize {
///         std::mem::size_of::<Self>() + self.name.capacity()
///     }
/// }
/// ```
///
/// A type that does not implement `Cacheable` is refused at compile time:
///
/// ```compile_fail
/// use std::convert::Infallible;
/// use query_cache::{QueryCache, Ttl};
///
/// struct SessionToken(String); // no `impl Cacheable`: must never be cached
///
/// async fn cache_token(cache: &QueryCache) {
///     let _ = cache
///         .with_cache("session:42", Ttl::SHORT, &[], || async {
///             Ok::<_, Infallible>(SessionToken("secret".to_owned()))
///         })
///         .await;
/// }
/// ```
pub trait Cacheable: Any + Send + Sync {
    /// Approximate size of the value in bytes (stack and heap), for the weight bound.
    fn weight(&self) -> usize {
        std::mem::size_of_val(self)
    }

    /// How values of this type cross the shared (L2) tier, or `None` (the default) to keep
    /// them in the process. See [`SharedCodec`] and the section above.
    fn shared_codec() -> Option<SharedCodec<Self>>
    where
        Self: Sized,
    {
        None
    }
}

macro_rules! shallow_cacheable {
    ($($ty:ty),* $(,)?) => {
        $(impl Cacheable for $ty {
            #[cfg(feature = "msgpack")]
            fn shared_codec() -> Option<SharedCodec<Self>> {
                Some(SharedCodec::msgpack(concat!("std/", stringify!($ty)), 1))
            }
        })*
    };
}

shallow_cacheable!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
);

impl Cacheable for String {
    fn weight(&self) -> usize {
        size_of::<String>() + self.capacity()
    }

    #[cfg(feature = "msgpack")]
    fn shared_codec() -> Option<SharedCodec<Self>> {
        Some(SharedCodec::msgpack("std/str", 1))
    }
}

impl Cacheable for Box<str> {
    fn weight(&self) -> usize {
        size_of::<Box<str>>() + self.len()
    }

    #[cfg(feature = "msgpack")]
    fn shared_codec() -> Option<SharedCodec<Self>> {
        // The same bytes as a `String`.
        Some(SharedCodec::msgpack("std/str", 1))
    }
}

impl<T: Cacheable> Cacheable for Option<T> {
    fn weight(&self) -> usize {
        size_of::<Self>()
            + self
                .as_ref()
                .map_or(0, |v| v.weight().saturating_sub(size_of::<T>()))
    }

    #[cfg(feature = "msgpack")]
    fn shared_codec() -> Option<SharedCodec<Self>> {
        T::shared_codec().map(|codec| codec.option())
    }
}

impl<T: Cacheable> Cacheable for Box<T> {
    fn weight(&self) -> usize {
        size_of::<Self>() + (**self).weight()
    }

    #[cfg(feature = "msgpack")]
    fn shared_codec() -> Option<SharedCodec<Self>> {
        T::shared_codec().map(|codec| codec.boxed())
    }
}

impl<T: Cacheable> Cacheable for Arc<T> {
    fn weight(&self) -> usize {
        size_of::<Self>() + (**self).weight()
    }

    #[cfg(feature = "msgpack")]
    fn shared_codec() -> Option<SharedCodec<Self>> {
        T::shared_codec().map(|codec| codec.arc())
    }
}

impl<T: Cacheable> Cacheable for Vec<T> {
    fn weight(&self) -> usize {
        let spare = (self.capacity() - self.len()) * size_of::<T>();
        size_of::<Self>() + spare + self.iter().map(Cacheable::weight).sum::<usize>()
    }

    #[cfg(feature = "msgpack")]
    fn shared_codec() -> Option<SharedCodec<Self>> {
        T::shared_codec().map(|codec| codec.vec())
    }
}

impl<T: Cacheable> Cacheable for Box<[T]> {
    fn weight(&self) -> usize {
        size_of::<Self>() + self.iter().map(Cacheable::weight).sum::<usize>()
    }

    #[cfg(feature = "msgpack")]
    fn shared_codec() -> Option<SharedCodec<Self>> {
        T::shared_codec().map(|codec| codec.boxed_slice())
    }
}

impl<K, V, S> Cacheable for HashMap<K, V, S>
where
    K: Cacheable,
    V: Cacheable,
    S: Send + Sync + 'static,
{
    fn weight(&self) -> usize {
        // One control byte per bucket on top of the pairs themselves.
        size_of::<Self>()
            + self.capacity()
            + self
                .iter()
                .map(|(k, v)| k.weight() + v.weight())
                .sum::<usize>()
    }
}

impl<T, S> Cacheable for HashSet<T, S>
where
    T: Cacheable,
    S: Send + Sync + 'static,
{
    fn weight(&self) -> usize {
        size_of::<Self>() + self.capacity() + self.iter().map(Cacheable::weight).sum::<usize>()
    }
}

impl<K: Cacheable + Ord, V: Cacheable> Cacheable for BTreeMap<K, V> {
    fn weight(&self) -> usize {
        size_of::<Self>()
            + self
                .iter()
                .map(|(k, v)| k.weight() + v.weight())
                .sum::<usize>()
    }

    #[cfg(feature = "msgpack")]
    fn shared_codec() -> Option<SharedCodec<Self>> {
        codec::btree_map::<K, V>()
    }
}

macro_rules! tuple_cacheable {
    ($(($codec:ident: $($name:ident),+)),* $(,)?) => {
        $(
            impl<$($name: Cacheable),+> Cacheable for ($($name,)+) {
                #[allow(non_snake_case)]
                fn weight(&self) -> usize {
                    let ($($name,)+) = self;
                    0 $(+ $name.weight())+
                }

                #[cfg(feature = "msgpack")]
                fn shared_codec() -> Option<SharedCodec<Self>> {
                    codec::$codec::<$($name),+>()
                }
            }
        )*
    };
}

tuple_cacheable!((tuple2: A, B), (tuple3: A, B, C), (tuple4: A, B, C, D));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_counts_heap_data() {
        let s = String::from("hello");
        assert!(s.weight() >= size_of::<String>() + 5);
        let v: Vec<String> = vec!["a".repeat(100), "b".repeat(50)];
        assert!(v.weight() >= size_of::<Vec<String>>() + 150 + 2 * size_of::<String>());
        assert_eq!(7u64.weight(), 8);
        assert_eq!(Some(7u64).weight(), size_of::<Option<u64>>());
    }
}
