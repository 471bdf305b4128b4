//! Plain-text tables for people: left-aligned columns, two spaces apart.

/// Renders `rows` under `header`, each column as wide as its widest cell.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, w) in cells.zip(&widths) {
            text.push_str(&format!("{cell:<w$}  "));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_columns() {
        let rows = vec![
            vec!["localhost".to_string(), "web-1".into(), "active".into()],
            vec!["h2".to_string(), "db-10000".into(), "".into()],
        ];
        assert_eq!(
            super::render(&["HOST", "ID", "ACTIVE"], &rows),
            "HOST       ID        ACTIVE\nlocalhost  web-1     active\nh2         db-10000\n"
        );
    }
}
