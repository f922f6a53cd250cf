//! Column-aligned plain-text tables for the `dvs` output.

/// How the cells of a column are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Padded on the right (text).
    Left,
    /// Padded on the left (numbers).
    Right,
}

/// A table: a header row and data rows, rendered with every column as
/// wide as its widest cell and two spaces between columns.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and alignments.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            headers: columns.iter().map(|(h, _)| h.to_string()).collect(),
            align: columns.iter().map(|&(_, a)| a).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row. Missing cells are left empty; extra cells are ignored.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// Renders the table, one line per row, each ending with a newline.
    /// A table without rows renders its header followed by `(none)`.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        self.line(&mut out, &self.headers, &widths);
        if self.rows.is_empty() {
            out.push_str("(none)\n");
        }
        for row in &self.rows {
            self.line(&mut out, row, &widths);
        }
        out
    }

    fn line(&self, out: &mut String, cells: &[String], widths: &[usize]) {
        let mut line = String::new();
        for (i, ((cell, &w), &align)) in cells.iter().zip(widths).zip(&self.align).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
            match align {
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(cell);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned() {
        let mut t = Table::new(&[
            ("id", Align::Right),
            ("name", Align::Left),
            ("n", Align::Right),
        ]);
        t.row(vec!["0".into(), "alpha".into(), "12345".into()]);
        t.row(vec!["10".into(), "b".into(), "7".into()]);
        assert_eq!(
            t.render(),
            "id  name       n\n 0  alpha  12345\n10  b          7\n"
        );
    }

    #[test]
    fn empty_table_says_none() {
        let t = Table::new(&[("id", Align::Right), ("name", Align::Left)]);
        assert_eq!(t.render(), "id  name\n(none)\n");
    }
}
