//! Query fingerprints: one query shape, one entry, on SQLite and PostgreSQL alike.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::sql::{Keyword, Token, TokenKind, is_keyword, matching_paren, tokenize};

/// A stable identifier of a query shape: a 64-bit FNV-1a hash of the fingerprint text, shown
/// as 16 hexadecimal digits.
///
/// The same shape gets the same id in every process and on every machine, so ids can be used as
/// metric labels and compared across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FingerprintId(pub u64);

impl fmt::Display for FingerprintId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for FingerprintId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FingerprintId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(&text, 16)
            .map(FingerprintId)
            .map_err(serde::de::Error::custom)
    }
}

/// What kind of statement a fingerprint is, the `operation` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// `SELECT` (and `WITH … SELECT`).
    Select,
    /// `INSERT`.
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// Anything else: `PRAGMA`, `EXPLAIN`, DDL, transaction control.
    Other,
}

impl Operation {
    /// The lowercase name used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Select => "select",
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The normalised shape of a SQL statement.
///
/// [`fingerprint`] makes one from SQL text. Two statements that differ only in
///
/// - whitespace, comments, letter case of keywords and unquoted identifiers, identifier quotes;
/// - literal values (`'abc'`, `42`, `-1.5`) and bind parameters (`$1` on PostgreSQL, `?` on
///   SQLite, `?3`, `:name`), all written `?`;
/// - the length of `IN (…)` lists of values, written `IN (...)`;
/// - the number of rows of a multi-row `VALUES (…), (…)`, written as the first row followed by
///   `, ...`
///
/// have the same fingerprint. Keywords are written in upper case, identifiers in lower case
/// (quoted ones as written), and spacing follows one fixed rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    id: FingerprintId,
    text: Arc<str>,
    operation: Operation,
}

impl Fingerprint {
    /// The stable id of this shape.
    pub fn id(&self) -> FingerprintId {
        self.id
    }

    /// The normalised SQL text.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn from_parts(id: FingerprintId, text: Arc<str>, operation: Operation) -> Self {
        Self {
            id,
            text,
            operation,
        }
    }

    /// The normalised SQL text, shared.
    pub(crate) fn shared_text(&self) -> Arc<str> {
        Arc::clone(&self.text)
    }

    /// The kind of statement.
    pub fn operation(&self) -> Operation {
        self.operation
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Fingerprints a SQL statement.
///
/// This is the slow path (a few microseconds for a typical statement); a
/// [`QueryTracker`](crate::QueryTracker) caches the result per distinct SQL string.
///
/// # Examples
///
/// ```
/// use perf_stats::{Operation, fingerprint};
///
/// let sqlite = fingerprint(r#"SELECT "id" FROM "bookings" WHERE "status" IN (?, ?, ?) LIMIT 10"#);
/// let postgres = fingerprint("select id\n  from bookings\n where status in ($1, $2) -- hot\n limit $3");
/// assert_eq!(sqlite, postgres);
/// assert_eq!(sqlite.text(), "SELECT id FROM bookings WHERE status IN (...) LIMIT ?");
/// assert_eq!(sqlite.operation(), Operation::Select);
/// ```
pub fn fingerprint(sql: &str) -> Fingerprint {
    let tokens = tokenize(sql);
    let text = render(&tokens, true);
    Fingerprint {
        id: FingerprintId(fnv1a(text.as_bytes())),
        operation: operation(&tokens),
        text: text.into(),
    }
}

/// The statement with every literal written `?` but lists left as they are: safe to keep in a
/// slow-query log (no values) yet close to what was run.
pub(crate) fn mask_literals(sql: &str) -> String {
    render(&tokenize(sql), false)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

fn operation(tokens: &[Token<'_>]) -> Operation {
    let mut depth = 0usize;
    for token in tokens {
        if token.is("(") {
            depth += 1;
        } else if token.is(")") {
            depth = depth.saturating_sub(1);
        } else if depth == 0 && token.kind == TokenKind::Word {
            let word = token.text;
            if word.eq_ignore_ascii_case("with") || word.eq_ignore_ascii_case("recursive") {
                continue;
            }
            for (keyword, op) in [
                ("select", Operation::Select),
                ("insert", Operation::Insert),
                ("update", Operation::Update),
                ("delete", Operation::Delete),
                ("replace", Operation::Insert),
            ] {
                if word.eq_ignore_ascii_case(keyword) {
                    return op;
                }
            }
            // `WITH name AS (...)`: the CTE names and AS come before the main statement.
            if tokens.first().is_some_and(|t| t.is_word("with")) {
                continue;
            }
            return Operation::Other;
        }
    }
    Operation::Other
}

/// One unit of output: a token as written in the fingerprint, and how it joins its neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    text: String,
    kind: PieceKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceKind {
    /// A clause keyword: a space before a following `(`.
    Keyword,
    /// An identifier or a function name: glued to a following `(`.
    Name,
    /// `?`
    Value,
    /// Punctuation or operators.
    Symbol,
}

/// The piece for `tokens[i]`.
fn piece_at(tokens: &[Token<'_>], i: usize) -> Piece {
    let token = &tokens[i];
    // `date`, `max`… are function names only when called; otherwise they are column names.
    if token.kind == TokenKind::Word
        && is_keyword(token.text) == Some(Keyword::Function)
        && !tokens.get(i + 1).is_some_and(|t| t.is("("))
    {
        return Piece {
            text: token.text.to_ascii_lowercase(),
            kind: PieceKind::Name,
        };
    }
    piece(token)
}

fn piece(token: &Token<'_>) -> Piece {
    match token.kind {
        TokenKind::Word => match is_keyword(token.text) {
            Some(Keyword::Clause) => Piece {
                text: token.text.to_ascii_uppercase(),
                kind: PieceKind::Keyword,
            },
            Some(Keyword::Function) => Piece {
                text: token.text.to_ascii_uppercase(),
                kind: PieceKind::Name,
            },
            None => Piece {
                text: token.text.to_ascii_lowercase(),
                kind: PieceKind::Name,
            },
        },
        TokenKind::QuotedIdent => Piece {
            text: token.ident().unwrap_or_default(),
            kind: PieceKind::Name,
        },
        TokenKind::String | TokenKind::Number | TokenKind::Placeholder => Piece {
            text: "?".to_owned(),
            kind: PieceKind::Value,
        },
        TokenKind::Punct | TokenKind::Operator => Piece {
            text: token.text.to_owned(),
            kind: PieceKind::Symbol,
        },
    }
}

/// Whether the parenthesised group `tokens[open..=close]` holds only values, commas and nested
/// parentheses: a list of values or of tuples of values.
fn only_values(tokens: &[Token<'_>], open: usize, close: usize) -> bool {
    close > open + 1
        && tokens[open + 1..close]
            .iter()
            .all(|t| t.is_value() || t.is(",") || t.is("(") || t.is(")"))
}

fn render(tokens: &[Token<'_>], collapse: bool) -> String {
    let mut pieces: Vec<Piece> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        let opens_group = tokens.get(i + 1).is_some_and(|t| t.is("("));
        if collapse
            && opens_group
            && token.is_word("in")
            && let Some(close) = matching_paren(tokens, i + 1)
            && only_values(tokens, i + 1, close)
        {
            pieces.push(piece(token));
            pieces.push(Piece {
                text: "(...)".to_owned(),
                kind: PieceKind::Symbol,
            });
            i = close + 1;
            continue;
        }
        if collapse
            && opens_group
            && token.is_word("values")
            && let Some(end) = collapse_values(tokens, i + 1, &mut pieces, token)
        {
            i = end;
            continue;
        }
        pieces.push(piece_at(tokens, i));
        i += 1;
    }
    // A trailing `;` is not part of the shape.
    while pieces.last().is_some_and(|p| p.text == ";") {
        pieces.pop();
    }
    join(&pieces)
}

/// Writes `VALUES (first row)` and `, ...` when more rows of the same shape follow; returns the
/// index after the last row consumed, or `None` when the rows are not a plain list.
fn collapse_values(
    tokens: &[Token<'_>],
    open: usize,
    pieces: &mut Vec<Piece>,
    values: &Token<'_>,
) -> Option<usize> {
    let first_close = matching_paren(tokens, open)?;
    let first: Vec<Piece> = (open..=first_close).map(|i| piece_at(tokens, i)).collect();
    let mut rows = 1;
    let mut next = first_close + 1;
    while tokens.get(next).is_some_and(|t| t.is(","))
        && tokens.get(next + 1).is_some_and(|t| t.is("("))
    {
        let close = matching_paren(tokens, next + 1)?;
        let row: Vec<Piece> = (next + 1..=close).map(|i| piece_at(tokens, i)).collect();
        if row != first {
            break;
        }
        rows += 1;
        next = close + 1;
    }
    pieces.push(piece(values));
    pieces.extend(first);
    if rows > 1 {
        pieces.push(Piece {
            text: ",".to_owned(),
            kind: PieceKind::Symbol,
        });
        pieces.push(Piece {
            text: "...".to_owned(),
            kind: PieceKind::Symbol,
        });
    }
    Some(next)
}

fn join(pieces: &[Piece]) -> String {
    let mut out = String::with_capacity(pieces.iter().map(|p| p.text.len() + 1).sum());
    let mut prev: Option<&Piece> = None;
    for piece in pieces {
        if prev.is_some_and(|prev| needs_space(prev, piece)) {
            out.push(' ');
        }
        out.push_str(&piece.text);
        prev = Some(piece);
    }
    out
}

fn needs_space(prev: &Piece, next: &Piece) -> bool {
    let p = prev.text.as_str();
    let n = next.text.as_str();
    if matches!(p, "(" | "[" | "." | "::") || matches!(n, ")" | "]" | "," | "." | "::" | ";") {
        return false;
    }
    if n == "(" {
        // Function calls and `table(columns)` are glued; clause keywords and operators are not.
        return prev.kind != PieceKind::Name;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (SQLite form, PostgreSQL form, expected fingerprint): both forms must give the expected
    /// text, hence the same id.
    const CASES: &[(&str, &str, &str)] = &[
        (
            r#"SELECT "bookings"."id", "bookings"."status" FROM "bookings" WHERE "bookings"."user_id" = ? AND "bookings"."status" = ?"#,
            r#"SELECT "bookings"."id", "bookings"."status" FROM "bookings" WHERE "bookings"."user_id" = $1 AND "bookings"."status" = $2"#,
            "SELECT bookings.id, bookings.status FROM bookings WHERE bookings.user_id = ? AND bookings.status = ?",
        ),
        (
            "select id from room_types where id in (?, ?, ?)",
            "SELECT id FROM room_types WHERE id IN ($1,$2,$3,$4,$5,$6)",
            "SELECT id FROM room_types WHERE id IN (...)",
        ),
        (
            "SELECT * FROM t WHERE id NOT IN (?)",
            "SELECT * FROM t WHERE id NOT IN ( $1 , $2 )",
            "SELECT * FROM t WHERE id NOT IN (...)",
        ),
        (
            "SELECT * FROM t WHERE (a, b) IN ((?, ?), (?, ?))",
            "SELECT * FROM t WHERE (a, b) IN (($1, $2))",
            "SELECT * FROM t WHERE (a, b) IN (...)",
        ),
        (
            r#"INSERT INTO "payments" ("booking_id", "amount") VALUES (?, ?), (?, ?), (?, ?) RETURNING "id""#,
            r#"INSERT INTO "payments" ("booking_id", "amount") VALUES ($1, $2), ($3, $4) RETURNING "id""#,
            "INSERT INTO payments(booking_id, amount) VALUES (?, ?), ... RETURNING id",
        ),
        (
            "SELECT COUNT(*) FROM bookings WHERE status = 'CONFIRMED' AND total_price > 100",
            "SELECT count( * ) FROM bookings WHERE status = $1 AND total_price > -5.5",
            "SELECT COUNT(*) FROM bookings WHERE status = ? AND total_price > ?",
        ),
        (
            "/* report */ SELECT a\n\t FROM  t -- trailing\n LIMIT 10 OFFSET 20;",
            "SELECT a FROM t LIMIT $1 OFFSET $2",
            "SELECT a FROM t LIMIT ? OFFSET ?",
        ),
        (
            "SELECT * FROM t WHERE d >= ? AND d < date(?)",
            "SELECT * FROM t WHERE d >= $1 AND d < DATE($2)",
            "SELECT * FROM t WHERE d >= ? AND d < DATE(?)",
        ),
        (
            "UPDATE room_inventory SET available_rooms = available_rooms - ? WHERE room_type_id = ? AND date >= ?",
            "update room_inventory set available_rooms = available_rooms - $1 where room_type_id = $2 and date >= $3",
            "UPDATE room_inventory SET available_rooms = available_rooms - ? WHERE room_type_id = ? AND date >= ?",
        ),
        (
            "WITH recent AS (SELECT id FROM bookings WHERE id IN (1, 2)) SELECT * FROM recent",
            "WITH recent AS (SELECT id FROM bookings WHERE id IN ($1)) SELECT * FROM recent",
            "WITH recent AS (SELECT id FROM bookings WHERE id IN (...)) SELECT * FROM recent",
        ),
        (
            "SELECT * FROM t WHERE id IN (SELECT t_id FROM u WHERE x = ?)",
            "SELECT * FROM t WHERE id IN (SELECT t_id FROM u WHERE x = $1)",
            "SELECT * FROM t WHERE id IN (SELECT t_id FROM u WHERE x = ?)",
        ),
    ];

    #[test]
    fn both_dialects_give_one_fingerprint() {
        for (sqlite, postgres, expected) in CASES {
            let a = fingerprint(sqlite);
            let b = fingerprint(postgres);
            assert_eq!(a.text(), *expected, "SQLite form: {sqlite}");
            assert_eq!(b.text(), *expected, "PostgreSQL form: {postgres}");
            assert_eq!(a.id(), b.id());
        }
    }

    #[test]
    fn different_shapes_differ() {
        let a = fingerprint("SELECT * FROM t WHERE a = ?");
        let b = fingerprint("SELECT * FROM t WHERE b = ?");
        let single = fingerprint("INSERT INTO t (a) VALUES (?)");
        let multi = fingerprint("INSERT INTO t (a) VALUES (?), (?)");
        assert_ne!(a.id(), b.id());
        assert_ne!(
            single.id(),
            multi.id(),
            "a batch and a single-row insert are different shapes"
        );
        assert_eq!(single.text(), "INSERT INTO t(a) VALUES (?)");
        // Identifiers with digits are names, not numbers.
        assert_eq!(
            fingerprint("SELECT t1.c2 FROM t1").text(),
            "SELECT t1.c2 FROM t1"
        );
    }

    #[test]
    fn operations() {
        for (sql, op) in [
            ("SELECT 1", Operation::Select),
            ("insert into t values (1)", Operation::Insert),
            ("UPDATE t SET a = 1", Operation::Update),
            ("DELETE FROM t", Operation::Delete),
            (
                "WITH RECURSIVE c(x) AS (SELECT 1) SELECT x FROM c",
                Operation::Select,
            ),
            ("WITH d AS (SELECT 1) DELETE FROM t", Operation::Delete),
            ("PRAGMA foreign_keys", Operation::Other),
            ("EXPLAIN QUERY PLAN SELECT 1", Operation::Other),
        ] {
            assert_eq!(fingerprint(sql).operation(), op, "{sql}");
        }
    }

    #[test]
    fn ids_are_stable_across_releases() {
        // The id is a metric label: changing the hash or the normalisation renames every series.
        assert_eq!(
            fingerprint("SELECT 1").id().to_string(),
            format!("{:016x}", fnv1a(b"SELECT ?"))
        );
        assert_eq!(FingerprintId(0xab).to_string(), "00000000000000ab");
    }

    #[test]
    fn masked_sql_keeps_lists_and_drops_values() {
        assert_eq!(
            mask_literals("SELECT * FROM users WHERE email = 'a@b.c' AND id IN (1, 2)"),
            "SELECT * FROM users WHERE email = ? AND id IN (?, ?)"
        );
    }
}
