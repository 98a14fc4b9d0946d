//! A report as one self-contained HTML page: inline CSS, charts as inline
//! SVG, no script and nothing fetched from elsewhere, so the file opens
//! without a server.
//!
//! The building blocks — [`escape`], [`page`], [`table`], [`bar_chart`],
//! [`stacked_bar_chart`], [`line_chart`] — know nothing of any report and
//! serve other pages too. Every data cell carries `data-row` (the row's
//! key) and `data-col` (the column's name) inside a `data-table` table, so
//! that a cell can be read back by what it means rather than where it is.

use crate::{Chart, ChartKind, Report, Table};

/// Text made safe for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's style: readable on a screen and on paper.
pub const CSS: &str = "
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --band: #f5f7fa; --accent: #2f6fb0; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: var(--ink); margin: 0; background: #fff; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 34px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
p.note { color: var(--muted); margin: 4px 0 12px; }
dl.params { display: flex; flex-wrap: wrap; gap: 4px 22px; margin: 0 0 12px; color: var(--muted); }
dl.params dt { font-weight: 600; } dl.params dd { margin: 0 0 0 4px; }
dl.params div { display: flex; }
table.data { border-collapse: collapse; margin: 10px 0 18px; font-size: 14px; }
table.data caption { text-align: left; font-weight: 600; padding: 4px 0; }
table.data th, table.data td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; }
table.data th { background: var(--band); font-weight: 600; position: sticky; top: 0; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.data tr.total td { font-weight: 700; border-top: 2px solid var(--ink); }
figure.chart { margin: 10px 0 18px; overflow-x: auto; }
figure.chart figcaption { font-weight: 600; margin-bottom: 4px; }
svg text { font: 12px system-ui, sans-serif; fill: var(--ink); }
svg .axis { stroke: var(--muted); stroke-width: 1; }
svg .grid { stroke: var(--line); stroke-width: 1; }
@media print { h2 { break-after: avoid; } table.data th { position: static; } }
";

/// A whole self-contained document: `body_html` inside the page shell.
pub fn page(title: &str, body_html: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body_html}\n</main>\n</body>\n</html>\n",
        escape(title)
    )
}

/// A table with `data-table`, `data-row` and `data-col` attributes; numbers
/// right-aligned; a row keyed `…total` styled as a totals row.
pub fn table(t: &Table) -> String {
    let mut out = format!("<table class=\"data\" data-table=\"{}\">", escape(&t.id));
    if !t.caption.is_empty() {
        out.push_str(&format!("<caption>{}</caption>", escape(&t.caption)));
    }
    out.push_str("<thead><tr>");
    for c in &t.columns {
        out.push_str(&format!("<th scope=\"col\">{}</th>", escape(&c.replace('_', " "))));
    }
    out.push_str("</tr></thead><tbody>\n");
    for r in &t.rows {
        let class = if r.key.ends_with("|total") { " class=\"total\"" } else { "" };
        out.push_str(&format!("<tr{class}>"));
        for (c, cell) in t.columns.iter().zip(&r.cells) {
            let num = if cell.is_number() { " class=\"num\"" } else { "" };
            out.push_str(&format!(
                "<td{num} data-row=\"{}\" data-col=\"{}\">{}</td>",
                escape(&r.key),
                escape(c),
                escape(&cell.to_string())
            ));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    out
}

/// Series colours, distinguishable in print and for most colour vision.
pub const PALETTE: [&str; 8] = ["#2f6fb0", "#e8a33d", "#c44e52", "#55a868", "#8172b2", "#937860", "#64b5cd", "#8c8c8c"];

const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 64.0;
/// The narrowest room per label before the chart widens.
const MIN_SLOT: f64 = 18.0;

/// A round top for the y axis above `max`.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * mag >= max {
            return step * mag;
        }
    }
    10.0 * mag
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// The frame shared by the charts: the svg element, grid, y ticks, legend
/// and x labels; `plot` draws the data inside.
fn frame(chart: &Chart, top: f64, plot: impl FnOnce(&mut String, f64, f64, f64)) -> String {
    // Many labels widen the chart (the figure scrolls) rather than crowd it.
    let w = W.max(LEFT + RIGHT + chart.labels.len() as f64 * MIN_SLOT);
    let rotate = chart.labels.len() > 8;
    // Slanted labels need room below the axis for the longest one.
    let longest = chart.labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    let bottom = if rotate { BOTTOM.max(24.0 + longest * 5.5) } else { BOTTOM };
    let h = H - BOTTOM + bottom;
    let (pw, ph) = (w - LEFT - RIGHT, H - TOP - BOTTOM);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        escape(&chart.title)
    );
    for i in 0..=5 {
        let v = top * i as f64 / 5.0;
        let y = TOP + ph - ph * i as f64 / 5.0;
        s.push_str(&format!("<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>", LEFT + pw));
        s.push_str(&format!("<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", LEFT - 6.0, y + 4.0, fmt_num(v)));
    }
    s.push_str(&format!(
        "<text x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{}</text>",
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        escape(&chart.unit)
    ));
    let n = chart.labels.len().max(1) as f64;
    let slot = pw / n;
    for (i, l) in chart.labels.iter().enumerate() {
        let x = LEFT + slot * (i as f64 + 0.5);
        let y = TOP + ph + 16.0;
        if rotate {
            s.push_str(&format!(
                "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"end\" transform=\"rotate(-40 {x:.1} {y:.1})\">{}</text>",
                escape(l)
            ));
        } else {
            s.push_str(&format!("<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\">{}</text>", escape(l)));
        }
    }
    plot(&mut s, pw, ph, slot);
    s.push_str(&format!("<line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>", LEFT + pw, TOP + ph, TOP + ph));
    let mut lx = LEFT;
    for (i, series) in chart.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        s.push_str(&format!("<rect x=\"{lx:.1}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{color}\"/>"));
        s.push_str(&format!("<text x=\"{:.1}\" y=\"18\">{}</text>", lx + 16.0, escape(&series.name)));
        lx += 28.0 + 7.5 * series.name.chars().count() as f64;
    }
    s.push_str("</svg>");
    s
}

fn figure(chart: &Chart, svg: String) -> String {
    format!("<figure class=\"chart\"><figcaption>{}</figcaption>{svg}</figure>\n", escape(&chart.title))
}

/// Bars side by side per label, one per series.
pub fn bar_chart(chart: &Chart) -> String {
    let max = chart.series.iter().flat_map(|s| s.values.iter().copied()).fold(0.0, f64::max);
    let top = chart.y_max.unwrap_or_else(|| nice_max(max));
    let svg = frame(chart, top, |s, _pw, ph, slot| {
        let k = chart.series.len().max(1) as f64;
        let bw = (slot * 0.8 / k).max(1.0);
        for (si, series) in chart.series.iter().enumerate() {
            let color = PALETTE[si % PALETTE.len()];
            for (i, v) in series.values.iter().enumerate() {
                let h = ph * (v / top).clamp(0.0, 1.0);
                let x = LEFT + slot * i as f64 + slot * 0.1 + bw * si as f64;
                let label = chart.labels.get(i).map(String::as_str).unwrap_or("");
                s.push_str(&format!(
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{h:.1}\" fill=\"{color}\"><title>{}: {} {}</title></rect>",
                    TOP + ph - h,
                    escape(label),
                    escape(&series.name),
                    fmt_num(*v)
                ));
            }
        }
    });
    figure(chart, svg)
}

/// One bar per label, the series stacked in it.
pub fn stacked_bar_chart(chart: &Chart) -> String {
    let totals: Vec<f64> =
        (0..chart.labels.len()).map(|i| chart.series.iter().map(|s| s.values.get(i).copied().unwrap_or(0.0)).sum()).collect();
    let top = chart.y_max.unwrap_or_else(|| nice_max(totals.iter().copied().fold(0.0, f64::max)));
    let svg = frame(chart, top, |s, _pw, ph, slot| {
        let bw = (slot * 0.6).max(1.0);
        for i in 0..chart.labels.len() {
            let mut base = 0.0;
            let x = LEFT + slot * i as f64 + slot * 0.2;
            for (si, series) in chart.series.iter().enumerate() {
                let v = series.values.get(i).copied().unwrap_or(0.0);
                if v <= 0.0 {
                    continue;
                }
                let y0 = TOP + ph - ph * (base / top).clamp(0.0, 1.0);
                let y1 = TOP + ph - ph * ((base + v) / top).clamp(0.0, 1.0);
                s.push_str(&format!(
                    "<rect x=\"{x:.1}\" y=\"{y1:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {} {}</title></rect>",
                    y0 - y1,
                    PALETTE[si % PALETTE.len()],
                    escape(&chart.labels[i]),
                    escape(&series.name),
                    fmt_num(v)
                ));
                base += v;
            }
        }
    });
    figure(chart, svg)
}

/// One line per series across the labels, with a dot at each value.
pub fn line_chart(chart: &Chart) -> String {
    let max = chart.series.iter().flat_map(|s| s.values.iter().copied()).fold(0.0, f64::max);
    let top = chart.y_max.unwrap_or_else(|| nice_max(max));
    let svg = frame(chart, top, |s, _pw, ph, slot| {
        for (si, series) in chart.series.iter().enumerate() {
            let color = PALETTE[si % PALETTE.len()];
            let pts: Vec<(f64, f64)> = series
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| (LEFT + slot * (i as f64 + 0.5), TOP + ph - ph * (v / top).clamp(0.0, 1.0)))
                .collect();
            let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            s.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2.5\" points=\"{}\"/>",
                path.join(" ")
            ));
            for (i, (x, y)) in pts.iter().enumerate() {
                let label = chart.labels.get(i).map(String::as_str).unwrap_or("");
                s.push_str(&format!(
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{color}\"><title>{}: {}</title></circle>",
                    escape(label),
                    fmt_num(series.values[i])
                ));
            }
        }
    });
    figure(chart, svg)
}

/// A chart drawn the way its kind says.
pub fn chart(c: &Chart) -> String {
    match c.kind {
        ChartKind::Bar => bar_chart(c),
        ChartKind::StackedBar => stacked_bar_chart(c),
        ChartKind::Line => line_chart(c),
    }
}

/// The whole report as a page.
pub fn report(r: &Report) -> String {
    let mut body = format!("<h1>{}</h1>\n<dl class=\"params\">", escape(&r.title));
    for (k, v) in &r.parameters {
        body.push_str(&format!("<div><dt>{}</dt><dd data-param=\"{}\">{}</dd></div>", escape(k), escape(k), escape(v)));
    }
    body.push_str("</dl>\n");
    for s in &r.sections {
        body.push_str(&format!("<section>\n<h2>{}</h2>\n", escape(&s.title)));
        if let Some(n) = &s.note {
            body.push_str(&format!("<p class=\"note\">{}</p>\n", escape(n)));
        }
        for c in &s.charts {
            body.push_str(&chart(c));
        }
        for t in &s.tables {
            body.push_str(&table(t));
        }
        body.push_str("</section>\n");
    }
    page(&format!("{} — {}", r.title, r.parameters.first().map(|p| p.1.as_str()).unwrap_or("")), &body)
}
