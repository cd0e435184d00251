//! Reading SQLite's `EXPLAIN QUERY PLAN` lines, in the wording of SQLite before 3.36
//! (`SCAN TABLE t`, `SEARCH TABLE t USING INDEX i (a=?)`) and after (`SCAN t`, `SEARCH t USING
//! INDEX i (a=?)`).

use super::{Access, PlanStep, analysis::QueryShape};

/// One plan line as a step.
pub(super) fn step(detail: &str, shape: &QueryShape) -> PlanStep {
    let detail = detail.trim();
    let other = || PlanStep {
        table: None,
        access: Access::Other,
        detail: detail.to_owned(),
    };
    if let Some(purpose) = detail.strip_prefix("USE TEMP B-TREE FOR ") {
        return PlanStep {
            table: None,
            access: Access::TempSort {
                purpose: purpose.to_owned(),
            },
            detail: detail.to_owned(),
        };
    }
    let (search, rest) = if let Some(rest) = detail.strip_prefix("SEARCH ") {
        (true, rest)
    } else if let Some(rest) = detail.strip_prefix("SCAN ") {
        (false, rest)
    } else {
        return other();
    };
    let rest = rest.strip_prefix("TABLE ").unwrap_or(rest);
    if rest.starts_with("CONSTANT ROW") || rest.starts_with('(') || rest.starts_with("SUBQUERY") {
        return other();
    }
    let (name, mut after) = rest.split_once(' ').unwrap_or((rest, ""));
    // Old wording names the table and then its alias: `SCAN TABLE bookings AS b`.
    if let Some(alias_and_more) = after.strip_prefix("AS ") {
        after = alias_and_more.split_once(' ').map_or("", |(_, more)| more);
    }
    let table = Some(shape.table_of(name));
    let using = after.trim_start().strip_prefix("USING ");
    let access = match using {
        None => {
            if search {
                Access::Other
            } else {
                Access::FullScan
            }
        }
        Some(u) if u.starts_with("AUTOMATIC ") => Access::AutomaticIndex {
            columns: constrained_columns(u),
        },
        Some(u) => {
            let (index, covering) = if let Some(r) = u.strip_prefix("COVERING INDEX ") {
                (first_word(r), true)
            } else if let Some(r) = u.strip_prefix("INDEX ") {
                (first_word(r), false)
            } else if u.starts_with("INTEGER PRIMARY KEY") {
                ("INTEGER PRIMARY KEY".to_owned(), false)
            } else if u.starts_with("PRIMARY KEY") {
                ("PRIMARY KEY".to_owned(), false)
            } else {
                (u.to_owned(), false)
            };
            if search {
                Access::IndexSearch { index, covering }
            } else {
                Access::FullIndexScan { index, covering }
            }
        }
    };
    PlanStep {
        table,
        access,
        detail: detail.to_owned(),
    }
}

fn first_word(text: &str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `AUTOMATIC COVERING INDEX (room_type_id=? AND date>?)` → `[room_type_id, date]`.
fn constrained_columns(using: &str) -> Vec<String> {
    let Some(inner) = using
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map(|(inner, _)| inner)
    else {
        return Vec::new();
    };
    inner
        .split(" AND ")
        .filter_map(|term| {
            let name: String = term
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> QueryShape {
        QueryShape::parse(
            "SELECT * FROM bookings AS b JOIN room_types ON b.room_type_id = room_types.id",
        )
    }

    #[test]
    fn old_and_new_wordings_read_the_same() {
        let shape = shape();
        for (old, new, access) in [
            ("SCAN TABLE bookings", "SCAN bookings", Access::FullScan),
            (
                "SEARCH TABLE bookings USING INDEX idx_bookings_user_status_created (user_id=? AND status=?)",
                "SEARCH bookings USING INDEX idx_bookings_user_status_created (user_id=? AND status=?)",
                Access::IndexSearch {
                    index: "idx_bookings_user_status_created".into(),
                    covering: false,
                },
            ),
            (
                "SEARCH TABLE bookings USING COVERING INDEX idx_a (status=?)",
                "SEARCH bookings USING COVERING INDEX idx_a (status=?)",
                Access::IndexSearch {
                    index: "idx_a".into(),
                    covering: true,
                },
            ),
            (
                "SCAN TABLE bookings USING INDEX idx_b",
                "SCAN bookings USING INDEX idx_b",
                Access::FullIndexScan {
                    index: "idx_b".into(),
                    covering: false,
                },
            ),
            (
                "SEARCH TABLE room_types USING INTEGER PRIMARY KEY (rowid=?)",
                "SEARCH room_types USING INTEGER PRIMARY KEY (rowid=?)",
                Access::IndexSearch {
                    index: "INTEGER PRIMARY KEY".into(),
                    covering: false,
                },
            ),
            (
                "SEARCH TABLE bookings AS b USING AUTOMATIC COVERING INDEX (room_type_id=?)",
                "SEARCH b USING AUTOMATIC PARTIAL COVERING INDEX (room_type_id=? AND status>?)",
                Access::AutomaticIndex {
                    columns: vec!["room_type_id".into()],
                },
            ),
        ] {
            let old_step = step(old, &shape);
            let new_step = step(new, &shape);
            assert_eq!(
                old_step.table.as_deref(),
                new_step.table.as_deref(),
                "{old} / {new}"
            );
            assert!(old_step.table.is_some());
            if let Access::AutomaticIndex { .. } = access {
                assert_eq!(old_step.access, access);
                assert_eq!(
                    new_step.access,
                    Access::AutomaticIndex {
                        columns: vec!["room_type_id".into(), "status".into()]
                    }
                );
                assert_eq!(
                    new_step.table.as_deref(),
                    Some("bookings"),
                    "alias resolved"
                );
            } else {
                assert_eq!(old_step.access, access, "{old}");
                assert_eq!(new_step.access, access, "{new}");
            }
        }
    }

    #[test]
    fn temp_b_trees_and_other_lines() {
        let shape = shape();
        assert_eq!(
            step("USE TEMP B-TREE FOR ORDER BY", &shape).access,
            Access::TempSort {
                purpose: "ORDER BY".into()
            }
        );
        assert_eq!(step("SCAN CONSTANT ROW", &shape).access, Access::Other);
        assert_eq!(
            step("CO-ROUTINE (subquery-1)", &shape).access,
            Access::Other
        );
        assert_eq!(step("SCAN (subquery-1)", &shape).access, Access::Other);
    }
}
