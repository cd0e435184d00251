//! Text for people: error chains and byte sizes, as the run log, the health checks and
//! `hotel-backup` print them.

/// An error followed by each of its causes: "outer: inner: innermost".
///
/// ```
/// let err = std::io::Error::new(std::io::ErrorKind::Other, "disk full");
/// assert_eq!(backup::error_chain(&err), "disk full");
/// ```
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A byte count in binary units with one decimal: "512 B", "1.5 KiB", "110.7 MiB".
///
/// ```
/// assert_eq!(backup::human_bytes(512), "512 B");
/// assert_eq!(backup::human_bytes(1536), "1.5 KiB");
/// ```
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Durations serialised as whole milliseconds in reports (`duration: 1234`).
pub(crate) mod millis {
    pub(crate) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}
