//! The shell of the service's own pages: one self-contained document
//! (inline CSS, no script, no asset from elsewhere) with the service's
//! navigation; the reports bring their own (`rollcall_report::html`).

pub use rollcall_report::html::escape;

const STYLE: &str = "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2430;background:#f6f7f9}\
header{background:#1f3a5f;color:#fff;padding:.6rem 1.5rem;display:flex;gap:1.5rem;align-items:baseline}\
header a{color:#dce7f5;text-decoration:none}header strong{font-size:1.1rem}\
main{padding:1rem 1.5rem;max-width:72rem}h1{font-size:1.4rem;margin:.4rem 0 1rem}h2{font-size:1.1rem;margin:1.4rem 0 .5rem}\
table{border-collapse:collapse;background:#fff;margin:.3rem 0 1rem}th,td{border:1px solid #d5dae1;padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{background:#eef1f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.tiles{display:flex;gap:.8rem;flex-wrap:wrap;margin-bottom:1rem}.tile{background:#fff;border:1px solid #d5dae1;border-radius:6px;padding:.5rem .9rem;min-width:8rem}\
.tile b{display:block;font-size:1.5rem}.p{color:#17663a}.a{color:#a4262c}.x{color:#8a5a00}.muted{color:#5b6573}\
.cal td{width:7.5rem;height:4.2rem}.cal .code{font-size:1.2rem;font-weight:600}.problem{color:#a4262c}\
ul{margin:.2rem 0 .8rem}form label{display:block;margin:.5rem 0}input{font:inherit;padding:.3rem}button{font:inherit;padding:.3rem .9rem}";

/// A whole page around `body` (HTML), titled `title` (text).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'\">\
         <link rel=\"icon\" href=\"data:,\"><title>{} · rollcall</title><style>{STYLE}</style></head><body><header><strong>rollcall</strong>\
         <a href=\"/\">Schools</a><a href=\"/logout\">Sign out</a></header><main>{body}</main></body></html>",
        escape(title)
    )
}

/// The CSS class that colours a status: present, absent, other.
pub fn status_class(status: &str) -> &'static str {
    match status {
        "PRESENT" | "PRESENT_REMOTE" => "p",
        "ABSENT_EXCUSED" | "ABSENT_UNEXCUSED" => "a",
        _ => "x",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_become_markup() {
        assert_eq!(escape("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
        let p = page("a <title>", "<p>x</p>");
        assert!(p.contains("a &lt;title&gt; · rollcall") && p.contains("<p>x</p>"));
        assert!(!p.contains("<script") && !p.contains("http://") && !p.contains("https://"));
    }
}
