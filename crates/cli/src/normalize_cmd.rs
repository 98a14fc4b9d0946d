//! `rollcall normalize`: one platform payload in, ActivityEvents out, with
//! the same pure normalizers the HTTP gateway uses (crate rollcall-ingest).
//!
//! stdout has only the events, one canonical JSON object per line, so that
//! it can be piped; everything for a person (events waiting for an
//! identity, platform events with no attendance meaning, the counts, the
//! errors with their places) goes to stderr.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use rollcall_ingest::{xapi, Format, IdentityView, Outcome};
use rollcall_model::ActivityKind;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Caliper,
    Xapi,
    Canvas,
    Zoom,
    Native,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Caliper => Format::Caliper,
            FormatArg::Xapi => Format::Xapi,
            FormatArg::Canvas => Format::Canvas,
            FormatArg::Zoom => Format::Zoom,
            FormatArg::Native => Format::Native,
        }
    }
}

#[derive(clap::Args)]
pub struct NormalizeArgs {
    /// The payload's format.
    #[arg(long, value_enum)]
    format: FormatArg,
    /// The source name: names the platform in the events and picks the
    /// identity rows (default: the format's name; native CSV: teacher_log).
    #[arg(long)]
    source: Option<String>,
    /// The identity view: a CSV with the header `source,type,external_id,id,school_id`.
    /// Without it every person and class is unknown, and every event waits.
    #[arg(long, value_name = "FILE.csv")]
    identities: Option<PathBuf>,
    /// xAPI: read a verb IRI as an ActivityKind, e.g.
    /// `http://adlnet.gov/expapi/verbs/answered=SUBMISSION` (repeatable).
    #[arg(long = "xapi-verb", value_name = "IRI=KIND")]
    xapi_verbs: Vec<String>,
    /// The payload, as the platform sent it (`-` for standard input).
    file: PathBuf,
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).context("reading standard input")?;
        return Ok(buf);
    }
    std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))
}

pub fn run(args: &NormalizeArgs) -> anyhow::Result<ExitCode> {
    let ids = match &args.identities {
        None => IdentityView::new(),
        Some(p) => {
            let bytes = read(p)?;
            IdentityView::from_csv(&bytes).map_err(|e| {
                let lines: Vec<String> = e.errors.iter().map(|e| format!("{}: {e}", p.display())).collect();
                anyhow::anyhow!("{}", lines.join("\n"))
            })?
        }
    };
    let format = Format::from(args.format);
    let source = args.source.as_deref().unwrap_or(format.name());
    anyhow::ensure!(args.xapi_verbs.is_empty() || matches!(format, Format::Xapi), "--xapi-verb applies to --format xapi only");
    let body = read(&args.file)?;
    let result = match format {
        Format::Xapi => {
            let mut options = xapi::XapiOptions::new(source);
            for v in &args.xapi_verbs {
                let (iri, kind) = v.rsplit_once('=').with_context(|| format!("--xapi-verb `{v}`: expected IRI=KIND"))?;
                let kind: ActivityKind = kind.parse().with_context(|| format!("--xapi-verb `{v}`"))?;
                options.verbs.insert(iri.to_string(), kind);
            }
            xapi::normalize(&body, &ids, &options)
        }
        _ => rollcall_ingest::normalize(format, &body, &ids, args.source.as_deref()),
    };
    let file = args.file.display();
    match result {
        Ok(out) => {
            print(&out)?;
            report(&out, &file.to_string(), ids.is_empty());
            Ok(ExitCode::SUCCESS)
        }
        Err(rejected) => {
            for e in &rejected.errors {
                eprintln!("{file}: {e}");
            }
            eprintln!(
                "{file}: refused ({} error{}; the gateway would answer {})",
                rejected.errors.len(),
                if rejected.errors.len() == 1 { "" } else { "s" },
                rejected.http_status()
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn print(out: &Outcome) -> anyhow::Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for e in &out.events {
        serde_json::to_writer(&mut w, e)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}

fn report(out: &Outcome, file: &str, no_identities: bool) {
    for w in &out.waiting {
        let unknown: Vec<String> = w.unknown.iter().map(|k| k.to_string()).collect();
        eprintln!("{file}: {}: {} waits for identity: unknown {}", w.place, w.event.kind, unknown.join(", "));
    }
    for (what, n) in &out.ignored {
        eprintln!("{file}: ignored {n} × {what} (no attendance meaning)");
    }
    let ignored: u64 = out.ignored.values().sum();
    eprintln!("{} events, {} waiting for identity, {ignored} ignored", out.events.len(), out.waiting.len());
    if no_identities && !out.waiting.is_empty() {
        eprintln!("(no --identities file was given, so no person or class is known)");
    }
}
