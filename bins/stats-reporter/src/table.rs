//! The cell formats the reports share, and the tables they go in (cli-support's).

use std::time::Duration;

pub(crate) use cli_support::table::{Align, Table};

fn width(text: &str) -> usize {
    text.chars().count()
}

/// A duration with a unit that suits it: `420 ns`, `4.2 µs`, `850 µs`, `12.3 ms`, `2.50 s`.
pub(crate) fn duration(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1.0 {
        format!("{} ns", d.as_nanos())
    } else if micros < 10.0 {
        format!("{micros:.1} µs")
    } else if micros < 1_000.0 {
        format!("{micros:.0} µs")
    } else if micros < 10_000.0 {
        format!("{:.2} ms", micros / 1e3)
    } else if micros < 1_000_000.0 {
        format!("{:.1} ms", micros / 1e3)
    } else {
        format!("{:.2} s", micros / 1e6)
    }
}

/// Milliseconds with microsecond precision, for columns headed "ms".
pub(crate) fn millis(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Shortens `text` to `max` characters with an ellipsis.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if width(text) <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}

/// Shortens a long select list to its first column (`SELECT t.id, … FROM t WHERE …`), so a
/// row shows the tables and filters that tell one query shape from another, then truncates to
/// `max` characters.
pub(crate) fn abbreviate_sql(sql: &str, max: usize) -> String {
    const LONG_LIST: usize = 40;
    let short = sql.strip_prefix("SELECT ").and_then(|rest| {
        // The FROM of this SELECT, not one inside a subquery of its select list.
        let mut depth = 0i32;
        let bytes = rest.as_bytes();
        let from = (0..bytes.len()).find(|&i| {
            match bytes[i] {
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            depth == 0 && rest[i..].starts_with(" FROM ")
        })?;
        let (list, tail) = rest.split_at(from);
        if list.len() <= LONG_LIST {
            return None;
        }
        let first = list.split(", ").next().unwrap_or(list);
        Some(if first.len() > LONG_LIST {
            format!("SELECT …{tail}")
        } else {
            format!("SELECT {first}, …{tail}")
        })
    });
    truncate(short.as_deref().unwrap_or(sql), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(duration(Duration::from_nanos(420)), "420 ns");
        assert_eq!(duration(Duration::from_nanos(4_240)), "4.2 µs");
        assert_eq!(duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration(Duration::from_micros(1_234)), "1.23 ms");
        assert_eq!(duration(Duration::from_micros(45_670)), "45.7 ms");
        assert_eq!(duration(Duration::from_millis(2_500)), "2.50 s");
        assert_eq!(millis(Duration::from_micros(1_500)), "1.500");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }

    #[test]
    fn long_select_lists_give_way_to_the_tables() {
        assert_eq!(
            abbreviate_sql(
                "SELECT bookings.id, bookings.user_id, bookings.room_type_id, bookings.status FROM bookings WHERE id = ?",
                200
            ),
            "SELECT bookings.id, … FROM bookings WHERE id = ?"
        );
        assert_eq!(
            abbreviate_sql(
                "SELECT (SELECT COUNT(*) FROM room_types WHERE id = ?) AS room_type_exists, COUNT(*) AS nights FROM room_inventory WHERE x = ?",
                200
            ),
            "SELECT … FROM room_inventory WHERE x = ?"
        );
        assert_eq!(
            abbreviate_sql("SELECT a, b FROM t", 200),
            "SELECT a, b FROM t"
        );
    }
}
