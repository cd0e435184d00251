//! Aligned text tables for the binaries' human output, drawn by comfy-table (which measures
//! cells by their display width: µ, × and → are one column, 日本 two).

use std::fmt;

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Flush left (text).
    Left,
    /// Flush right (numbers).
    Right,
}

/// A table whose columns are as wide as their widest cell, two spaces apart, drawn by
/// comfy-table (which measures cells by their display width, not their bytes or chars).
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
    indent: usize,
}

impl Table {
    /// A table with these column headings and alignments.
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            columns: columns
                .iter()
                .map(|(name, align)| ((*name).to_owned(), *align))
                .collect(),
            rows: Vec::new(),
            indent: 2,
        }
    }

    /// Indents every line by `spaces` (default 2).
    pub fn indent(mut self, spaces: usize) -> Self {
        self.indent = spaces;
        self
    }

    /// Adds a row; missing cells are blank, extra ones ignored.
    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        let mut cells: Vec<String> = cells.into_iter().take(self.columns.len()).collect();
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table = comfy_table::Table::new();
        // No borders: each cell's padding of one space either side puts columns two spaces
        // apart and the first one a space in, which the indent completes.
        table.load_style(comfy_table::presets::NOTHING);
        table.set_header(self.columns.iter().map(|(name, _)| name.as_str()));
        for row in &self.rows {
            table.add_row(row.iter().map(String::as_str));
        }
        for (i, (_, align)) in self.columns.iter().enumerate() {
            if let Some(column) = table.column_mut(i) {
                column.set_cell_alignment(match align {
                    Align::Left => comfy_table::CellAlignment::Left,
                    Align::Right => comfy_table::CellAlignment::Right,
                });
            }
        }
        let indent = " ".repeat(self.indent.saturating_sub(1));
        for line in table.lines() {
            // comfy-table pads the first cell by one space: that space is the indent's last.
            let line = if self.indent == 0 {
                line.strip_prefix(' ').unwrap_or(&line).to_owned()
            } else {
                line
            };
            writeln!(f, "{indent}{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut table = Table::new(&[("name", Align::Left), ("calls", Align::Right)]);
        table.row(["availability".to_owned(), "7".to_owned()]);
        table.row(["room_types".to_owned(), "1234".to_owned()]);
        assert_eq!(
            table.to_string(),
            "  name          calls\n  availability      7\n  room_types     1234\n"
        );
    }

    /// Cells are measured by their display width: µ, × and → are one column wide each
    /// (several bytes in UTF-8), 日本 two columns each (one char each).
    #[test]
    fn cells_align_by_their_display_width() {
        let mut table = Table::new(&[
            ("query", Align::Left),
            ("p50", Align::Right),
            ("speed-up", Align::Right),
        ]);
        table.row(["a→b".to_owned(), "4.2 µs".to_owned(), "12×".to_owned()]);
        table.row(["日本".to_owned(), "850 ns".to_owned(), "3×".to_owned()]);
        assert_eq!(
            table.to_string(),
            "  query     p50  speed-up\n  a→b    4.2 µs       12×\n  日本   850 ns        3×\n"
        );
    }
}
