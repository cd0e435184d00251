//! Rows handed to Rust from inside SQLite's own loop, through an aggregate function, rather than
//! returned one by one as result rows.
//!
//! A scan of the integrity check ([`super::index_scan`]) reads millions of rows and does a
//! little with each value. Read as result columns, every value costs several calls into
//! SQLite's C API (its type, then its pointer and its length, each through the statement's
//! bookkeeping), and every row a return from the virtual machine to the caller: on the large
//! dataset that was about as much CPU as SQLite's own reading of the b-trees. As the arguments
//! of an aggregate, `SELECT <name>(a, b, rowid) FROM …`, the rows stay inside SQLite's loop
//! and each value is one or two plain calls.
//!
//! The rows reach the aggregate in the order the statement's loop reads them: for a scan of one
//! table or index without `GROUP BY` or `ORDER BY`, its b-tree's order.

use std::{cell::RefCell, rc::Rc};

use rusqlite::{
    Connection, Params,
    functions::{Aggregate, Context, FunctionFlags},
    types::ValueRef,
};

/// A row's values by position, however they were read: the aggregate's arguments here, or a
/// record decoded by the raw reader ([`super::btree_reader`]), so that a scan's visitor is
/// the same code on both paths.
pub(crate) trait RowValues {
    /// Value `i` of the row; `i` must be less than the number of values the scan reads.
    fn value(&self, i: usize) -> ValueRef<'_>;
}

impl RowValues for Context<'_> {
    fn value(&self, i: usize) -> ValueRef<'_> {
        self.get_raw(i)
    }
}

/// What is done with each row fed.
pub(crate) trait RowVisitor: 'static {
    /// One row: its values are the aggregate's arguments (`values.get_raw(i)`).
    fn row(&mut self, values: &Context<'_>);
}

/// An aggregate function of one connection that feeds its rows to the visitor of the
/// statement running.
pub(crate) struct RowFeed<V> {
    name: &'static str,
    slot: Rc<RefCell<Option<V>>>,
}

/// The aggregate itself: SQLite calls `step` once per row.
struct Feeder<V>(Rc<RefCell<Option<V>>>);

impl<V: RowVisitor> Aggregate<(), i64> for Feeder<V> {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<()> {
        Ok(())
    }

    fn step(&self, values: &mut Context<'_>, (): &mut ()) -> rusqlite::Result<()> {
        if let Some(visitor) = self.0.borrow_mut().as_mut() {
            visitor.row(values);
        }
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, _: Option<()>) -> rusqlite::Result<i64> {
        Ok(0)
    }
}

impl<V: RowVisitor> RowFeed<V> {
    /// Registers the aggregate `name` (any number of arguments) on `conn`.
    ///
    /// # Errors
    /// Whatever SQLite returns registering it.
    pub(crate) fn register(conn: &Connection, name: &'static str) -> rusqlite::Result<Self> {
        let slot = Rc::new(RefCell::new(None));
        conn.create_aggregate_function(
            name,
            -1,
            FunctionFlags::SQLITE_UTF8,
            Feeder(Rc::clone(&slot)),
        )?;
        Ok(Self { name, slot })
    }

    /// The aggregate's name, for the statements that call it.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Runs `sql` (one aggregate call, no `GROUP BY`) on `conn`, feeding each row to
    /// `visitor`, and gives it back.
    ///
    /// # Errors
    /// Whatever SQLite returns running the statement (a damaged page, mostly).
    pub(crate) fn run(
        &self,
        conn: &Connection,
        sql: &str,
        params: impl Params,
        visitor: V,
    ) -> rusqlite::Result<V> {
        *self.slot.borrow_mut() = Some(visitor);
        let ran = conn.query_row(sql, params, |_| Ok(()));
        let visitor = self.slot.borrow_mut().take();
        ran?;
        visitor.ok_or(rusqlite::Error::QueryReturnedNoRows)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;

    /// Collects every row fed, as owned values.
    #[derive(Default)]
    struct Collect(Vec<Vec<Value>>);

    impl RowVisitor for Collect {
        fn row(&mut self, values: &Context<'_>) {
            self.0.push(
                (0..values.len())
                    .map(|i| Value::try_from(values.get_raw(i)).unwrap())
                    .collect(),
            );
        }
    }

    /// The scans rely on it: the aggregate sees each row, its values as stored, in the order
    /// of the b-tree the statement reads (here an index whose order is not the rowids').
    #[test]
    fn rows_are_fed_in_the_order_of_the_btree_read() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v, w TEXT);
             CREATE INDEX t_v ON t (v DESC, w);
             INSERT INTO t (v, w) VALUES (3, 'c'), (1.5, 'a'), (NULL, 'n'), ('text', 'x'),
                 (x'00ff', 'b'), (3, 'a');",
        )
        .unwrap();
        let feed = RowFeed::<Collect>::register(&conn, "feed").unwrap();
        for from in ["t INDEXED BY t_v", "t NOT INDEXED"] {
            let expected: Vec<Vec<Value>> = conn
                .prepare(&format!("SELECT v, w, rowid FROM {from}"))
                .unwrap()
                .query_map([], |row| {
                    (0..3)
                        .map(|i| row.get::<_, Value>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let fed = feed
                .run(
                    &conn,
                    &format!("SELECT {}(v, w, rowid) FROM {from}", feed.name()),
                    [],
                    Collect::default(),
                )
                .unwrap();
            assert_eq!(fed.0, expected, "{from}");
            assert_eq!(fed.0.len(), 6);
        }
        // No row: the visitor comes back untouched.
        let none = feed
            .run(
                &conn,
                "SELECT feed(v) FROM t WHERE rowid > ?1",
                [100],
                Collect::default(),
            )
            .unwrap();
        assert!(none.0.is_empty());
        // A statement that fails is an error, and the next run starts afresh.
        assert!(
            feed.run(&conn, "SELECT feed(v) FROM missing", [], Collect::default())
                .is_err()
        );
        let again = feed
            .run(&conn, "SELECT feed(id) FROM t", [], Collect::default())
            .unwrap();
        assert_eq!(again.0.len(), 6);
        assert!(matches!(
            ValueRef::from(&again.0[0][0]),
            ValueRef::Integer(1)
        ));
    }
}
