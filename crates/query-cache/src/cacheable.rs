//! The opt-in marker for values the cache may hold.

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::mem::size_of;
use std::sync::Arc;

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
}

macro_rules! shallow_cacheable {
    ($($ty:ty),* $(,)?) => {
        $(impl Cacheable for $ty {})*
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
}

impl Cacheable for Box<str> {
    fn weight(&self) -> usize {
        size_of::<Box<str>>() + self.len()
    }
}

impl<T: Cacheable> Cacheable for Option<T> {
    fn weight(&self) -> usize {
        size_of::<Self>()
            + self
                .as_ref()
                .map_or(0, |v| v.weight().saturating_sub(size_of::<T>()))
    }
}

impl<T: Cacheable> Cacheable for Box<T> {
    fn weight(&self) -> usize {
        size_of::<Self>() + (**self).weight()
    }
}

impl<T: Cacheable> Cacheable for Arc<T> {
    fn weight(&self) -> usize {
        size_of::<Self>() + (**self).weight()
    }
}

impl<T: Cacheable> Cacheable for Vec<T> {
    fn weight(&self) -> usize {
        let spare = (self.capacity() - self.len()) * size_of::<T>();
        size_of::<Self>() + spare + self.iter().map(Cacheable::weight).sum::<usize>()
    }
}

impl<T: Cacheable> Cacheable for Box<[T]> {
    fn weight(&self) -> usize {
        size_of::<Self>() + self.iter().map(Cacheable::weight).sum::<usize>()
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

impl<K: Cacheable, V: Cacheable> Cacheable for BTreeMap<K, V> {
    fn weight(&self) -> usize {
        size_of::<Self>()
            + self
                .iter()
                .map(|(k, v)| k.weight() + v.weight())
                .sum::<usize>()
    }
}

macro_rules! tuple_cacheable {
    ($(($($name:ident),+)),* $(,)?) => {
        $(
            impl<$($name: Cacheable),+> Cacheable for ($($name,)+) {
                #[allow(non_snake_case)]
                fn weight(&self) -> usize {
                    let ($($name,)+) = self;
                    0 $(+ $name.weight())+
                }
            }
        )*
    };
}

tuple_cacheable!((A, B), (A, B, C), (A, B, C, D));

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
