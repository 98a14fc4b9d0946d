//! The dead-letter vocabulary is one: [`DeadLetterKind`]. The lists of kinds
//! that people read (docs/data-model.md's table, ARCHITECTURE.md's
//! paragraph on dead letters) name exactly its kinds.

use std::collections::BTreeSet;
use std::path::Path;

use rollcall_model::DeadLetterKind;

fn repo_file(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn vocabulary() -> BTreeSet<String> {
    DeadLetterKind::ALL.iter().map(|k| k.as_str().to_string()).collect()
}

/// The `UPPER_SNAKE` words in backquotes in `text`.
fn kinds_in(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.len() > 2 && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_string)
        .collect()
}

#[test]
fn data_model_table_lists_every_kind() {
    let doc = repo_file("docs/data-model.md");
    let table: Vec<&str> =
        doc.lines().skip_while(|l| !l.starts_with("| error_kind |")).skip(2).take_while(|l| l.starts_with('|')).collect();
    assert!(!table.is_empty(), "docs/data-model.md: no `| error_kind | the record |` table");
    let listed: Vec<String> = table.iter().filter_map(|l| l.split('`').nth(1)).map(str::to_string).collect();
    let set: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(set.len(), listed.len(), "docs/data-model.md lists a kind twice: {listed:?}");
    assert_eq!(set, vocabulary(), "docs/data-model.md's table of error kinds against DeadLetterKind");
}

#[test]
fn architecture_lists_every_kind() {
    let doc = repo_file("ARCHITECTURE.md");
    let start = doc.find("Dead letters (`rollcall.dlq.v1`)").expect("ARCHITECTURE.md: the paragraph on dead letters");
    let paragraph = doc[start..].split("\n\n").next().unwrap_or_default();
    let mut listed = kinds_in(paragraph);
    listed.retain(|w| w != "DLQ");
    assert_eq!(listed, vocabulary(), "ARCHITECTURE.md's paragraph on dead letters against DeadLetterKind");
}

#[test]
fn each_kind_reads_back_and_says_what_it_means() {
    for k in DeadLetterKind::ALL {
        assert_eq!(k.as_str().parse::<DeadLetterKind>(), Ok(*k));
        assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{k}\""));
        assert!(!k.meaning().is_empty() && !k.meaning().contains('\n'), "{k}");
    }
    let err = "UNKNOWN_TOPIC".parse::<DeadLetterKind>().unwrap_err().to_string();
    assert!(err.contains("UNKNOWN_TOPIC") && err.contains("NOT_AVRO"), "{err}");
    let wire: Vec<_> = DeadLetterKind::ALL.iter().filter(|k| k.is_wire_check()).map(|k| k.as_str()).collect();
    assert_eq!(
        wire,
        ["MISSING_VALUE", "MISSING_KEY", "KEY_MISMATCH", "NOT_AVRO", "WRONG_SCHEMA", "UNKNOWN_ENUM", "SCHEMA_INVALID"]
    );
}
