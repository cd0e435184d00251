//! Which tables a query reads and which of their columns it filters and sorts on, read from the
//! SQL text. Enough for sea-orm's output (qualified columns, one statement) and ordinary
//! hand-written SQL; anything it cannot attribute is left out rather than guessed.

use hashbrown::HashMap;

use crate::sql::{Keyword, Token, TokenKind, is_keyword, tokenize};

/// How a column is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UseKind {
    /// `=`, `IS`: an index can seek to it and keep going on the next column.
    Equality,
    /// `IN (…)`: several seeks; as good as equality for filtering, but the rows of the seeks
    /// do not come out in one index order.
    In,
    /// `<`, `>`, `BETWEEN`, `LIKE`: an index can seek to a range; later columns only filter.
    Range,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnUse {
    pub(crate) table: Option<String>,
    pub(crate) column: String,
    pub(crate) kind: UseKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clause {
    Where,
    On,
    OrderBy,
    GroupBy,
    Other,
}

/// What a query reads, filters and sorts on.
#[derive(Debug, Default)]
pub(crate) struct QueryShape {
    /// Alias or table name (lower case) → table name.
    aliases: HashMap<String, String>,
    tables: Vec<String>,
    filters: Vec<ColumnUse>,
    joins: Vec<ColumnUse>,
    order_by: Vec<ColumnUse>,
    group_by: Vec<ColumnUse>,
}

/// A parenthesised part of a statement (a subquery, a function's arguments, a list) and the
/// tables named directly in it: an unqualified column belongs to the nearest enclosing scope
/// that names tables, not to the statement as a whole.
#[derive(Debug)]
struct Scope {
    parent: Option<usize>,
    tables: Vec<String>,
}

/// Unqualified column uses waiting for their table: which list, which entry, which scope.
#[derive(Debug, Clone, Copy)]
enum UseList {
    Filters,
    Joins,
    OrderBy,
    GroupBy,
}

fn is_name(token: &Token<'_>) -> bool {
    match token.kind {
        TokenKind::QuotedIdent => true,
        // A function name (`date`, `max`) can also be a column's.
        TokenKind::Word => is_keyword(token.text) != Some(Keyword::Clause),
        _ => false,
    }
}

fn comparison(tokens: &[Token<'_>], at: usize) -> Option<UseKind> {
    let token = tokens.get(at)?;
    match token.kind {
        TokenKind::Operator => match token.text {
            "=" | "==" => Some(UseKind::Equality),
            "<" | ">" | "<=" | ">=" => Some(UseKind::Range),
            _ => None,
        },
        TokenKind::Word => {
            let word = token.text.to_ascii_lowercase();
            match word.as_str() {
                "in" => Some(UseKind::In),
                "is" => Some(UseKind::Equality),
                "between" | "like" => Some(UseKind::Range),
                _ => None,
            }
        }
        _ => None,
    }
}

impl QueryShape {
    pub(crate) fn parse(sql: &str) -> Self {
        let tokens = tokenize(sql);
        let mut shape = Self::default();
        let mut clause = Clause::Other;
        // The table of the innermost JOIN: its ON clause says how it is probed.
        let mut joined: Option<String> = None;
        let mut scopes = vec![Scope {
            parent: None,
            tables: Vec::new(),
        }];
        let mut scope = 0;
        let mut unqualified: Vec<(UseList, usize, usize)> = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let token = &tokens[i];
            if token.is("(") {
                scopes.push(Scope {
                    parent: Some(scope),
                    tables: Vec::new(),
                });
                scope = scopes.len() - 1;
                i += 1;
                continue;
            }
            if token.is(")") {
                // A derived table's alias (`(SELECT …) b`) stays a name of its own: the plan's
                // `SCAN b` reads the materialised rows, not the base table.
                scope = scopes[scope].parent.unwrap_or(0);
                i += 1;
                continue;
            }
            if token.kind == TokenKind::Word && is_keyword(token.text) == Some(Keyword::Clause) {
                let word = token.text.to_ascii_lowercase();
                match word.as_str() {
                    "from" | "join" | "update" | "into" => {
                        clause = Clause::Other;
                        let mut named = Vec::new();
                        let end = shape.table_refs(&tokens, i + 1, word == "from", &mut named);
                        joined = if word == "join" {
                            tokens
                                .get(i + 1)
                                .and_then(Token::ident)
                                .map(|name| shape.table_of(&name))
                                .or_else(|| named.first().cloned())
                        } else {
                            None
                        };
                        scopes[scope].tables.extend(named);
                        i = end;
                        continue;
                    }
                    "where" => clause = Clause::Where,
                    "on" => clause = Clause::On,
                    "order" if tokens.get(i + 1).is_some_and(|t| t.is_word("by")) => {
                        clause = Clause::OrderBy;
                        i += 2;
                        continue;
                    }
                    "group" if tokens.get(i + 1).is_some_and(|t| t.is_word("by")) => {
                        clause = Clause::GroupBy;
                        i += 2;
                        continue;
                    }
                    "having" | "limit" | "offset" | "returning" | "union" | "select" | "set"
                    | "values" | "window" => clause = Clause::Other,
                    _ => {}
                }
                i += 1;
                continue;
            }
            if clause != Clause::Other
                && is_name(token)
                && !tokens.get(i + 1).is_some_and(|t| t.is("("))
            {
                let (qualifier, column, next) = if tokens.get(i + 1).is_some_and(|t| t.is("."))
                    && tokens.get(i + 2).is_some_and(is_name)
                {
                    (token.ident(), tokens[i + 2].ident(), i + 3)
                } else {
                    (None, token.ident(), i + 1)
                };
                if let Some(column) = column {
                    let table = qualifier.map(|q| self_resolve(&shape.aliases, &q));
                    let is_unqualified = table.is_none();
                    let mut push = |list: UseList, used: ColumnUse, shape: &mut Self| {
                        let entries = shape.list_mut(list);
                        if is_unqualified {
                            unqualified.push((list, entries.len(), scope));
                        }
                        entries.push(used);
                    };
                    match clause {
                        Clause::OrderBy | Clause::GroupBy => {
                            let used = ColumnUse {
                                table,
                                column,
                                kind: UseKind::Range,
                            };
                            let list = if clause == Clause::OrderBy {
                                UseList::OrderBy
                            } else {
                                UseList::GroupBy
                            };
                            push(list, used, &mut shape);
                        }
                        Clause::Where | Clause::On => {
                            // `col OP operand`, or `operand OP col`.
                            let compared = comparison(&tokens, next)
                                .map(|kind| (kind, next + 1))
                                .or_else(|| {
                                    let op = i.checked_sub(1)?;
                                    Some((comparison(&tokens, op)?, op.checked_sub(1)?))
                                });
                            if let Some((kind, operand)) = compared {
                                let to_column = tokens.get(operand).is_some_and(is_name)
                                    && !tokens.get(operand + 1).is_some_and(|t| t.is("("));
                                let probed =
                                    clause == Clause::Where || (table.is_some() && table == joined);
                                let used = ColumnUse {
                                    table,
                                    column,
                                    kind,
                                };
                                // A column compared with a value filters its table, in WHERE
                                // or in a JOIN's ON alike; compared with another column it
                                // says how the table is probed in a join.
                                if !to_column {
                                    push(UseList::Filters, used, &mut shape);
                                } else if probed {
                                    push(UseList::Joins, used, &mut shape);
                                }
                            }
                        }
                        Clause::Other => {}
                    }
                }
                i = next;
                continue;
            }
            i += 1;
        }
        // An unqualified column belongs to the only table of the nearest enclosing scope that
        // names tables (`(SELECT * FROM bookings WHERE user_id = ?) b JOIN …` filters
        // bookings), or to the statement's only table.
        for (list, index, at) in unqualified {
            let mut owner = Some(at);
            while let Some(s) = owner.filter(|&s| scopes[s].tables.is_empty()) {
                owner = scopes[s].parent;
            }
            let table = match owner.map(|s| scopes[s].tables.as_slice()) {
                Some([only]) => Some(only.clone()),
                _ => match shape.tables.as_slice() {
                    [only] => Some(only.clone()),
                    _ => None,
                },
            };
            if let (Some(table), Some(used)) = (table, shape.list_mut(list).get_mut(index)) {
                used.table = Some(table);
            }
        }
        shape
    }

    fn list_mut(&mut self, list: UseList) -> &mut Vec<ColumnUse> {
        match list {
            UseList::Filters => &mut self.filters,
            UseList::Joins => &mut self.joins,
            UseList::OrderBy => &mut self.order_by,
            UseList::GroupBy => &mut self.group_by,
        }
    }

    /// Reads `table [AS alias]` (and, after FROM, more of them separated by commas) from `at`;
    /// returns the index after them.
    fn table_refs(
        &mut self,
        tokens: &[Token<'_>],
        mut at: usize,
        list: bool,
        named: &mut Vec<String>,
    ) -> usize {
        loop {
            if !tokens.get(at).is_some_and(is_name) {
                return at;
            }
            let mut name = tokens[at].ident().unwrap_or_default();
            at += 1;
            // schema.table
            while tokens.get(at).is_some_and(|t| t.is("."))
                && tokens.get(at + 1).is_some_and(is_name)
            {
                name = tokens[at + 1].ident().unwrap_or_default();
                at += 2;
            }
            let name = name.to_lowercase();
            if !self.tables.contains(&name) {
                self.tables.push(name.clone());
            }
            if !named.contains(&name) {
                named.push(name.clone());
            }
            self.aliases.insert(name.clone(), name.clone());
            if tokens.get(at).is_some_and(|t| t.is_word("as")) {
                at += 1;
            }
            if tokens.get(at).is_some_and(is_name) {
                if let Some(alias) = tokens[at].ident() {
                    self.aliases.insert(alias.to_lowercase(), name.clone());
                }
                at += 1;
            }
            if list && tokens.get(at).is_some_and(|t| t.is(",")) {
                at += 1;
            } else {
                return at;
            }
        }
    }

    /// The table a name in a plan refers to (an alias resolves to its table).
    pub(crate) fn table_of(&self, name: &str) -> String {
        self_resolve(&self.aliases, name)
    }

    /// Whether `table` is one of the tables the statement reads (not a derived table's alias).
    pub(crate) fn names_table(&self, table: &str) -> bool {
        self.tables.iter().any(|t| t == table)
    }

    /// Whether the query's WHERE filters on a column of `table`.
    pub(crate) fn is_filtered(&self, table: &str) -> bool {
        self.filters
            .iter()
            .any(|u| u.table.as_deref() == Some(table))
    }

    /// The columns of a composite index that would serve this query on `table`: equality
    /// filters first, then the columns a join probes it by, then the range columns, or the
    /// grouping or sort columns when nothing is a range or an `IN` list (either stops an index
    /// from also giving the order).
    pub(crate) fn suggested_columns(&self, table: &str) -> Vec<String> {
        let on_table = |uses: &[ColumnUse], kinds: &[UseKind]| -> Vec<String> {
            uses.iter()
                .filter(|u| u.table.as_deref() == Some(table) && kinds.contains(&u.kind))
                .map(|u| u.column.clone())
                .collect()
        };
        let mut columns: Vec<String> = Vec::new();
        let mut add = |more: Vec<String>| {
            for column in more {
                if !columns.contains(&column) {
                    columns.push(column);
                }
            }
        };
        let equality = on_table(&self.filters, &[UseKind::Equality, UseKind::In]);
        let lists = !on_table(&self.filters, &[UseKind::In]).is_empty();
        let range = on_table(&self.filters, &[UseKind::Range]);
        // When the table is probed from another one (a nested loop), the join columns are
        // equality lookups too.
        let joined = on_table(&self.joins, &[UseKind::Equality]);
        add(equality);
        add(joined);
        if !range.is_empty() {
            // The first range column seeks; the others still filter inside the index.
            add(range);
        } else if !lists {
            // Rows read in index order need no temporary sort: by the grouping if there is
            // one (the ORDER BY then sorts the groups), else by the ORDER BY.
            let grouped = on_table(&self.group_by, &[UseKind::Range]);
            if grouped.is_empty() {
                add(on_table(&self.order_by, &[UseKind::Range]));
            } else {
                add(grouped);
            }
        }
        columns
    }
}

fn self_resolve(aliases: &HashMap<String, String>, name: &str) -> String {
    let lower = name.to_lowercase();
    aliases.get(&lower).cloned().unwrap_or(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sea_orm_style_filters_and_order() {
        let shape = QueryShape::parse(
            r#"SELECT "bookings"."id" FROM "bookings" WHERE "bookings"."user_id" = $1 AND "bookings"."status" = $2 ORDER BY "bookings"."created_at" DESC LIMIT $3"#,
        );
        assert!(shape.is_filtered("bookings"));
        assert_eq!(
            shape.suggested_columns("bookings"),
            ["user_id", "status", "created_at"]
        );
    }

    #[test]
    fn unqualified_columns_of_a_derived_table_belong_to_its_table() {
        let shape = QueryShape::parse(
            "SELECT b.id, r.name, p.id FROM (SELECT * FROM bookings WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2) b JOIN room_types r ON r.id = b.room_type_id LEFT JOIN payments p ON p.booking_id = b.id ORDER BY b.created_at DESC",
        );
        assert!(shape.is_filtered("bookings"));
        assert!(!shape.is_filtered("room_types"));
        assert_eq!(shape.table_of("b"), "b");
        assert_eq!(
            shape.suggested_columns("bookings"),
            ["user_id", "created_at", "id"]
        );
        assert_eq!(shape.suggested_columns("payments"), ["booking_id"]);
    }

    #[test]
    fn range_columns_come_after_equality_and_replace_the_order() {
        let shape = QueryShape::parse(
            "SELECT * FROM bookings b WHERE b.start_date < ? AND b.end_date > ? AND b.status IN (?, ?) ORDER BY b.created_at",
        );
        assert_eq!(
            shape.suggested_columns("bookings"),
            ["status", "start_date", "end_date"]
        );
    }

    #[test]
    fn aliases_and_joins() {
        let shape = QueryShape::parse(
            r#"SELECT "b"."id", "r0"."name" FROM "bookings" AS "b" LEFT JOIN "room_types" AS "r0" ON "b"."room_type_id" = "r0"."id" WHERE "b"."user_id" = ?"#,
        );
        assert_eq!(shape.table_of("r0"), "room_types");
        assert_eq!(shape.table_of("B"), "bookings");
        assert!(shape.is_filtered("bookings"));
        assert!(!shape.is_filtered("room_types"), "only joined");
        assert_eq!(shape.suggested_columns("room_types"), ["id"]);
        assert_eq!(shape.suggested_columns("bookings"), ["user_id"]);
    }

    #[test]
    fn unqualified_columns_of_a_single_table_and_unfiltered_queries() {
        let shape = QueryShape::parse(
            "select * from room_inventory where date between ? and ? and room_type_id = ?",
        );
        assert_eq!(
            shape.suggested_columns("room_inventory"),
            ["room_type_id", "date"]
        );
        let shape = QueryShape::parse("SELECT * FROM room_types ORDER BY name");
        assert!(!shape.is_filtered("room_types"));
    }

    #[test]
    fn values_in_a_join_condition_filter_the_joined_table() {
        let shape = QueryShape::parse(
            "SELECT rt.id, MIN(i.available_rooms) FROM room_types rt LEFT JOIN room_inventory i \
             ON i.room_type_id = rt.id AND i.date >= $1 AND i.date < $2 GROUP BY rt.id ORDER BY rt.id",
        );
        assert!(shape.is_filtered("room_inventory"));
        assert!(!shape.is_filtered("room_types"));
        assert_eq!(
            shape.suggested_columns("room_inventory"),
            ["room_type_id", "date"]
        );
    }

    #[test]
    fn grouping_columns_follow_the_equality_filters() {
        let shape = QueryShape::parse(
            "SELECT status, COUNT(*) FROM payments WHERE user_id = $1 GROUP BY status ORDER BY 2",
        );
        assert_eq!(shape.suggested_columns("payments"), ["user_id", "status"]);
    }

    #[test]
    fn an_in_list_does_not_promise_an_order() {
        let shape =
            QueryShape::parse("SELECT * FROM payments WHERE booking_id IN (?, ?, ?) ORDER BY id");
        assert_eq!(shape.suggested_columns("payments"), ["booking_id"]);
    }

    #[test]
    fn functions_are_not_columns() {
        let shape = QueryShape::parse("SELECT * FROM t WHERE lower(email) = ? AND id > 3");
        assert_eq!(shape.suggested_columns("t"), ["id"]);
    }
}
