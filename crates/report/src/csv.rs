//! A report as CSV (RFC 4180): one table per report, its flat table
//! ([`crate::Report::flat`]) — a header row of column names, then one
//! record per row, CRLF line ends, fields quoted when they hold a comma, a
//! quote or a line break. Per-group tables of the page are the flat
//! table's rows split by their first column, so nothing is lost.

use crate::{Report, Table};

/// One field, quoted when it must be.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A table as CSV text.
pub fn table(t: &Table) -> String {
    let mut out = String::new();
    let line = |out: &mut String, fields: Vec<String>| {
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    };
    line(&mut out, t.columns.iter().map(|c| field(c)).collect());
    for r in &t.rows {
        line(&mut out, r.cells.iter().map(|c| field(&c.to_string())).collect());
    }
    out
}

/// The report as CSV text.
pub fn report(r: &Report) -> String {
    table(&r.flat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cell;

    #[test]
    fn quotes_what_must_be_quoted() {
        let mut t = Table::new("t", "t", &["a", "b,c"]);
        t.push("k", vec![Cell::text("say \"hi\""), Cell::Int(3)]);
        t.push("l", vec![Cell::text("two\nlines"), Cell::text("")]);
        assert_eq!(table(&t), "a,\"b,c\"\r\n\"say \"\"hi\"\"\",3\r\n\"two\nlines\",\r\n");
    }
}
