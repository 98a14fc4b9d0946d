//! The identity view: which SIS id a platform's own person or class id
//! stands for.
//!
//! A key is (source, type, external id): the source is the platform
//! instance as configured (`caliper`, `canvas`, `district-moodle`, ...), the
//! type is `student`, `staff` or `section`, and the external id is what the
//! platform sends (see each format's module for which field). It maps to the
//! SIS id and, for people, the SIS school id.
//!
//! The CSV form has exactly this header, in this order:
//!
//! ```text
//! source,type,external_id,id,school_id
//! caliper,student,https://lms.example.edu/users/554433,S2001,lincoln-ms
//! caliper,section,https://lms.example.edu/sections/1,alg-1-02,lincoln-ms
//! zoom,staff,t.jones@example.org,T-17,lincoln-ms
//! ```
//!
//! `school_id` is required for students (an event carries the student's
//! school) and may be empty for staff and sections. Ids are compared exactly,
//! as the platform sends them (no case folding: two platforms may differ in
//! what case means). The same key listed twice with different values is an
//! error, so that a merge of two exports cannot silently pick one.

use std::collections::HashMap;
use std::fmt;

use rollcall_model::{IdentityRecord, IdentityType};

use crate::{IngestError, Rejected};

/// What an external id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdType {
    Student,
    Staff,
    Section,
}

impl IdType {
    pub fn as_str(self) -> &'static str {
        match self {
            IdType::Student => "student",
            IdType::Staff => "staff",
            IdType::Section => "section",
        }
    }

    pub fn parse(s: &str) -> Option<IdType> {
        match s {
            "student" => Some(IdType::Student),
            "staff" => Some(IdType::Staff),
            "section" => Some(IdType::Section),
            _ => None,
        }
    }
}

impl fmt::Display for IdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A platform's id for a person or class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityKey {
    pub source: String,
    pub kind: IdType,
    pub external_id: String,
}

impl fmt::Display for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} `{}`", self.source, self.kind, self.external_id)
    }
}

/// The SIS ids a key stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub school_id: String,
}

/// Every known key. Cheap to look up; built once per identity export.
#[derive(Debug, Clone, Default)]
pub struct IdentityView {
    /// By source, then by type (`IdType as usize`), then by external id:
    /// a lookup borrows its keys and allocates nothing. Hashed with
    /// foldhash, not SipHash, which was a thirtieth of the gateway's CPU:
    /// the keys come from the district's own mapping, and a request only
    /// looks them up.
    map: HashMap<String, [ById; 3], FastHash>,
}

type FastHash = foldhash::fast::RandomState;
type ById = HashMap<String, Identity, FastHash>;

/// The CSV form's header, exactly.
pub const CSV_HEADER: [&str; 5] = ["source", "type", "external_id", "id", "school_id"];

impl IdentityView {
    pub fn new() -> IdentityView {
        IdentityView::default()
    }

    /// Adds a key; returns the identity it had before, if any.
    pub fn insert(&mut self, source: &str, kind: IdType, external_id: &str, identity: Identity) -> Option<Identity> {
        self.map.entry(source.to_string()).or_default()[kind as usize].insert(external_id.to_string(), identity)
    }

    pub fn get(&self, source: &str, kind: IdType, external_id: &str) -> Option<&Identity> {
        self.map.get(source)?[kind as usize].get(external_id)
    }

    pub fn len(&self) -> usize {
        self.map.values().flatten().map(ById::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds (or, with a newer value, replaces) what a record maps.
    pub fn apply(&mut self, r: &IdentityRecord) {
        let identity = Identity { id: r.id.clone(), school_id: r.school_id.clone().unwrap_or_default() };
        self.insert(&r.source, r.kind.into(), &r.external_id, identity);
    }

    /// Forgets a key (a tombstone on the identities topic).
    pub fn remove(&mut self, source: &str, kind: IdType, external_id: &str) -> Option<Identity> {
        self.map.get_mut(source)?[kind as usize].remove(external_id)
    }

    /// Reads the CSV form (see the module documentation). Every bad row is
    /// reported, with its line and column.
    pub fn from_csv(bytes: &[u8]) -> Result<IdentityView, Rejected> {
        let mut view = IdentityView::new();
        for r in records_from_csv(bytes)? {
            view.apply(&r);
        }
        Ok(view)
    }
}

/// Reads the CSV form into the records of the identities topic, in the
/// file's order. Every bad row is reported, with its line and column; a key
/// listed twice with the same values is kept once.
pub fn records_from_csv(bytes: &[u8]) -> Result<Vec<IdentityRecord>, Rejected> {
    let mut records: Vec<IdentityRecord> = Vec::new();
    let mut first: HashMap<(String, IdType, String), (u64, usize)> = HashMap::new();
    let (rows, mut errors) = read_csv(bytes, &CSV_HEADER)?;
    for (line, row) in rows {
        let err = |column: &str, problem: String| IngestError::Csv { line, column: Some(column.to_string()), problem };
        let [source, kind, external_id, id, school_id] = [0, 1, 2, 3, 4].map(|i| row.get(i).map_or("", String::as_str));
        let mut bad = false;
        for (name, value) in [("source", source), ("external_id", external_id), ("id", id)] {
            if value.is_empty() {
                errors.push(err(name, "empty".into()));
                bad = true;
            }
        }
        if source.contains('|') {
            errors.push(err("source", format!("`{source}` contains `|`, which separates the parts of the topic's key")));
            bad = true;
        }
        let Some(kind) = IdType::parse(kind) else {
            errors.push(err("type", format!("`{kind}` is not one of student, staff, section")));
            continue;
        };
        if kind == IdType::Student && school_id.is_empty() {
            errors.push(err("school_id", "empty: a student's events carry the student's school".into()));
            bad = true;
        }
        if bad {
            continue;
        }
        let record = IdentityRecord {
            source: source.to_string(),
            kind: kind.into(),
            external_id: external_id.to_string(),
            id: id.to_string(),
            school_id: Some(school_id.to_string()).filter(|s| !s.is_empty()),
        };
        match first.get(&(source.to_string(), kind, external_id.to_string())) {
            Some(&(_, at)) if records[at] == record => {}
            Some(&(first_line, at)) => {
                let before = &records[at];
                errors.push(IngestError::Csv {
                    line,
                    column: None,
                    problem: format!(
                        "{source} {kind} `{external_id}` is listed again with other values (first on line {first_line}: id `{}`, school `{}`)",
                        before.id,
                        before.school_id.as_deref().unwrap_or_default()
                    ),
                });
            }
            None => {
                first.insert((source.to_string(), kind, external_id.to_string()), (line, records.len()));
                records.push(record);
            }
        }
    }
    if errors.is_empty() {
        Ok(records)
    } else {
        Err(Rejected { errors: by_line(errors) })
    }
}

impl From<IdentityType> for IdType {
    fn from(t: IdentityType) -> IdType {
        match t {
            IdentityType::Student => IdType::Student,
            IdentityType::Staff => IdType::Staff,
            IdentityType::Section => IdType::Section,
        }
    }
}

impl From<IdType> for IdentityType {
    fn from(t: IdType) -> IdentityType {
        match t {
            IdType::Student => IdentityType::Student,
            IdType::Staff => IdentityType::Staff,
            IdType::Section => IdentityType::Section,
        }
    }
}

/// CSV errors in line order (the reader's and the rows' are found apart).
pub(crate) fn by_line(mut errors: Vec<IngestError>) -> Vec<IngestError> {
    errors.sort_by_key(|e| match e {
        IngestError::Csv { line, .. } => *line,
        _ => 0,
    });
    errors
}

/// Reads an RFC 4180 CSV whose header must be exactly `header` (a UTF-8
/// byte-order mark is read past). Returns each data row with its line
/// number (the header is line 1), each row having exactly the header's
/// number of fields, already trimmed of surrounding spaces, and the errors
/// of the rows that are not (the header's is the only error returned alone).
pub(crate) fn read_csv(bytes: &[u8], header: &[&str]) -> Result<(Vec<(u64, Vec<String>)>, Vec<IngestError>), Rejected> {
    read_csv_with(bytes, header, None)
}

/// [`read_csv`], where the header may go on past `header` with columns
/// whose names start with `extension` (OneRoster's `metadata.*`, which the
/// spec puts at the right-hand end). Rows are returned cut to `header`'s
/// columns: an extension is not read, only allowed.
pub(crate) fn read_csv_with(
    bytes: &[u8],
    header: &[&str],
    extension: Option<&str>,
) -> Result<(Vec<(u64, Vec<String>)>, Vec<IngestError>), Rejected> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut records = reader.records();
    let csv_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        let problem = match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_string(),
            _ => e.to_string(),
        };
        IngestError::Csv { line, column: None, problem }
    };
    let found = match records.next() {
        None => {
            return Err(IngestError::Csv {
                line: 1,
                column: None,
                problem: format!("empty; expected the header `{}`", header.join(",")),
            }
            .into())
        }
        Some(r) => r.map_err(csv_err)?,
    };
    let found: Vec<&str> = found.iter().map(str::trim).collect();
    let extra_ok = |extra: &[&str]| match extension {
        None => extra.is_empty(),
        Some(prefix) => extra.iter().all(|c| c.len() > prefix.len() && c.starts_with(prefix)),
    };
    if found.len() < header.len() || found[..header.len()] != *header || !extra_ok(&found[header.len()..]) {
        let more = extension.map(|p| format!(" (then only `{p}*` columns)")).unwrap_or_default();
        return Err(IngestError::Csv {
            line: 1,
            column: None,
            problem: format!("the header is `{}`; expected exactly `{}`{more}", found.join(","), header.join(",")),
        }
        .into());
    }
    let width = found.len();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for r in records {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                errors.push(csv_err(e));
                continue;
            }
        };
        let line = r.position().map(|p| p.line()).unwrap_or(0);
        // A blank line between rows is not a row.
        if r.len() == 1 && r.get(0).is_some_and(|f| f.trim().is_empty()) {
            continue;
        }
        if r.len() != width {
            errors.push(IngestError::Csv { line, column: None, problem: format!("{} fields; the header has {width}", r.len()) });
            continue;
        }
        rows.push((line, r.iter().take(header.len()).map(|f| f.trim().to_string()).collect()));
    }
    Ok((rows, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_csv_form() {
        let v = IdentityView::from_csv(
            b"\xEF\xBB\xBFsource,type,external_id,id,school_id\ncaliper,student,https://x/u/1,S1,sch\n\ncaliper,section,\"https://x/s,1\",sec-1,\nzoom,staff,t@x.org,T1,\n",
        )
        .unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(
            v.get("caliper", IdType::Student, "https://x/u/1"),
            Some(&Identity { id: "S1".into(), school_id: "sch".into() })
        );
        assert_eq!(v.get("caliper", IdType::Section, "https://x/s,1").map(|i| i.id.as_str()), Some("sec-1"));
        assert!(v.get("caliper", IdType::Staff, "https://x/u/1").is_none());
        assert!(v.get("xapi", IdType::Student, "https://x/u/1").is_none());
    }

    #[test]
    fn names_each_bad_row() {
        let e = IdentityView::from_csv(
            b"source,type,external_id,id,school_id\ncaliper,teacher,a,b,c\ncaliper,student,u1,S1,\ncaliper,student,u2,S2,x\ncaliper,student,u2,S3,x\ncaliper,student,u3\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "line 2, column `type`: `teacher` is not one of student, staff, section\n\
             line 3, column `school_id`: empty: a student's events carry the student's school\n\
             line 5: caliper student `u2` is listed again with other values (first on line 4: id `S2`, school `x`)\n\
             line 6: 3 fields; the header has 5"
        );
    }

    #[test]
    fn refuses_another_header() {
        let e = IdentityView::from_csv(b"source,kind,external_id,id,school_id\n").unwrap_err().to_string();
        assert_eq!(e, "line 1: the header is `source,kind,external_id,id,school_id`; expected exactly `source,type,external_id,id,school_id`");
        assert!(IdentityView::from_csv(b"").is_err());
        assert!(IdentityView::from_csv(b"source,type,external_id,id,school_id\n").unwrap().is_empty());
    }
}
