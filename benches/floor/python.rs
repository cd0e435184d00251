//! Python's `sqlite3` on the same file and statements, for reference (`sqlite3_floor.py`).

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use sea_orm::{Statement, Value};
use serde_json::{Map, Value as Json, json};

/// One line of the reference table: its name and its runs.
pub enum Case {
    /// Each run is a list of statements, fetched in full.
    Statements {
        name: String,
        iterations: usize,
        runs: Vec<Vec<Statement>>,
    },
    /// Each run is a guest: the page with room types, then its payments with `IN`.
    UserTwoStatements {
        name: String,
        iterations: usize,
        guests: Vec<i64>,
    },
}

fn parameter(value: &Value) -> Json {
    match value {
        Value::BigInt(Some(n)) => json!(n),
        Value::Int(Some(n)) => json!(n),
        Value::String(Some(s)) => json!(s),
        Value::ChronoDate(Some(d)) => json!(d.format("%F").to_string()),
        other => panic!("the Python reference binds no {other:?}"),
    }
}

fn statement(statement: &Statement) -> Json {
    let params: Map<String, Json> = statement
        .values
        .as_ref()
        .map_or(&[][..], |v| &v.0[..])
        .iter()
        .enumerate()
        .map(|(i, v)| ((i + 1).to_string(), parameter(v)))
        .collect();
    json!({ "sql": statement.sql, "params": params })
}

/// Medians in microseconds by case name, or `None` (with a SKIP line) without `python3`.
pub fn run(
    database: &Path,
    mmap_bytes: i64,
    cases: &[Case],
) -> Option<(String, Vec<(String, f64)>)> {
    let cases: Vec<Json> = cases
        .iter()
        .map(|case| match case {
            Case::Statements {
                name,
                iterations,
                runs,
            } => json!({
                "name": name,
                "iterations": iterations,
                "runs": runs.iter().map(|r| r.iter().map(statement).collect::<Vec<_>>()).collect::<Vec<_>>(),
            }),
            Case::UserTwoStatements {
                name,
                iterations,
                guests,
            } => json!({
                "name": name,
                "iterations": iterations,
                "kind": "user_two",
                "page_sql": super::USER_PAGE,
                "runs": guests,
            }),
        })
        .collect();
    let job = json!({ "database": database, "mmap_bytes": mmap_bytes, "cases": cases });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("floor/sqlite3_floor.py");
    let mut child = match Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) => {
            eprintln!("SKIP python sqlite3 reference: {err}");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the Python reference failed");
    let result: Json = serde_json::from_slice(&output.stdout).unwrap();
    let version = result["sqlite_version"].as_str().unwrap_or("?").to_owned();
    let medians = result["median_us"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    Some((version, medians))
}
