//! Reading PostgreSQL's `EXPLAIN (FORMAT JSON)` tree.

use serde_json::Value;

use super::{Access, PlanStep, analysis::QueryShape};

/// The access and sort steps of a plan, depth first.
///
/// # Errors
///
/// A description of what is wrong when the JSON is not a plan.
pub(super) fn steps(plan: &Value, shape: &QueryShape) -> Result<Vec<PlanStep>, String> {
    let root = plan
        .as_array()
        .and_then(|a| a.first())
        .and_then(|p| p.get("Plan"))
        .ok_or_else(|| format!("expected [{{\"Plan\": …}}], got {}", truncate(plan)))?;
    let mut steps = Vec::new();
    walk(root, None, shape, &mut steps);
    Ok(steps)
}

fn truncate(value: &Value) -> String {
    crate::report::truncate(&value.to_string(), 200)
}

fn text<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    node.get(key).and_then(Value::as_str)
}

fn walk(node: &Value, heap: Option<&str>, shape: &QueryShape, steps: &mut Vec<PlanStep>) {
    let node_type = text(node, "Node Type").unwrap_or_default();
    let relation = text(node, "Relation Name");
    let table = relation.map(|r| shape.table_of(r));
    let condition = |key: &str| {
        text(node, key)
            .map(|c| format!(" ({key}: {c})"))
            .unwrap_or_default()
    };
    match node_type {
        "Seq Scan" => steps.push(PlanStep {
            table: table.clone(),
            access: Access::FullScan,
            detail: format!(
                "Seq Scan on {}{}",
                relation.unwrap_or("?"),
                condition("Filter")
            ),
        }),
        "Index Scan" | "Index Only Scan" => {
            let index = text(node, "Index Name").unwrap_or("?").to_owned();
            let covering = node_type == "Index Only Scan";
            // Without an index condition the whole index is read, typically to avoid a
            // disabled sequential scan or to return rows in index order.
            let access = if node.get("Index Cond").is_some() {
                Access::IndexSearch { index, covering }
            } else {
                Access::FullIndexScan { index, covering }
            };
            steps.push(PlanStep {
                table: table.clone(),
                access,
                detail: format!(
                    "{node_type} using {} on {}{}{}",
                    text(node, "Index Name").unwrap_or("?"),
                    relation.unwrap_or("?"),
                    condition("Index Cond"),
                    condition("Filter")
                ),
            });
        }
        "Bitmap Index Scan" => steps.push(PlanStep {
            table: heap.map(|h| shape.table_of(h)),
            access: Access::IndexSearch {
                index: text(node, "Index Name").unwrap_or("?").to_owned(),
                covering: false,
            },
            detail: format!(
                "Bitmap Index Scan using {}{}",
                text(node, "Index Name").unwrap_or("?"),
                condition("Index Cond")
            ),
        }),
        "Sort" | "Incremental Sort" => {
            let keys = node
                .get("Sort Key")
                .and_then(Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            steps.push(PlanStep {
                table: None,
                access: Access::TempSort {
                    purpose: if node_type == "Sort" {
                        "ORDER BY".to_owned()
                    } else {
                        "ORDER BY (incremental, after an index)".to_owned()
                    },
                },
                detail: format!("{node_type} (Sort Key: {keys})"),
            });
        }
        _ => {}
    }
    let heap = if node_type == "Bitmap Heap Scan" {
        relation
    } else {
        heap
    };
    if let Some(children) = node.get("Plans").and_then(Value::as_array) {
        for child in children {
            walk(child, heap, shape, steps);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scans_index_scans_bitmaps_and_sorts() {
        let shape = QueryShape::parse(
            "SELECT * FROM bookings b JOIN room_types r ON b.room_type_id = r.id",
        );
        let plan = json!([{ "Plan": {
            "Node Type": "Sort", "Sort Key": ["b.created_at DESC"],
            "Plans": [{
                "Node Type": "Nested Loop",
                "Plans": [
                    { "Node Type": "Bitmap Heap Scan", "Relation Name": "bookings", "Alias": "b",
                      "Plans": [{ "Node Type": "Bitmap Index Scan", "Index Name": "idx_bookings_status_start_end",
                                  "Index Cond": "((status)::text = 'CONFIRMED'::text)" }] },
                    { "Node Type": "Index Scan", "Relation Name": "room_types", "Alias": "r",
                      "Index Name": "room_types_pkey", "Index Cond": "(id = b.room_type_id)" },
                    { "Node Type": "Index Only Scan", "Relation Name": "room_types", "Alias": "r",
                      "Index Name": "room_types_pkey" },
                    { "Node Type": "Seq Scan", "Relation Name": "payments", "Alias": "payments",
                      "Filter": "(amount > 0)" }
                ]
            }]
        }}]);
        let steps = steps(&plan, &shape).unwrap();
        let accesses: Vec<(Option<&str>, &Access)> = steps
            .iter()
            .map(|s| (s.table.as_deref(), &s.access))
            .collect();
        assert_eq!(
            accesses,
            vec![
                (
                    None,
                    &Access::TempSort {
                        purpose: "ORDER BY".into()
                    }
                ),
                (
                    Some("bookings"),
                    &Access::IndexSearch {
                        index: "idx_bookings_status_start_end".into(),
                        covering: false
                    }
                ),
                (
                    Some("room_types"),
                    &Access::IndexSearch {
                        index: "room_types_pkey".into(),
                        covering: false
                    }
                ),
                (
                    Some("room_types"),
                    &Access::FullIndexScan {
                        index: "room_types_pkey".into(),
                        covering: true
                    }
                ),
                (Some("payments"), &Access::FullScan),
            ]
        );
        assert_eq!(
            steps[4].detail,
            "Seq Scan on payments (Filter: (amount > 0))"
        );
    }

    #[test]
    fn something_else_is_a_readable_error() {
        let shape = QueryShape::parse("SELECT 1");
        let err = steps(&json!({"oops": 1}), &shape).unwrap_err();
        assert!(err.contains("expected [{\"Plan\""), "{err}");
    }
}
