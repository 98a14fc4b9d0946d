//! Scenarios: the executable examples of docs/scenarios.md.
//!
//! A scenario file holds a world (calendars, roster, absence reports), events
//! in arrival order, a final clock and the expected outcome. This crate parses
//! scenario files with errors that name the file, the place and the problem;
//! drives the one engine over any store; and checks expectations, reporting
//! each difference by key with what was expected and what came out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rollcall_engine::{ApplyError, Engine, EngineConfig, EngineError, KvStore, Output};
use rollcall_model::{
    AbsenceReport, ActivityEvent, DeadLetterKind, Determination, OutreachTrigger, SchoolCalendar, StudentRecord,
};
use rollcall_policy::Policy;
use serde::Serialize;
use serde_json::{Map, Value};

/// The check of the decoder on arbitrary input, for the fuzz target and the
/// corpus test.
#[doc(hidden)]
pub mod fuzzing;

/// Why a scenario could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}: cannot read")]
    Io { file: String, source: std::io::Error },
    #[error("{file}: {place}: {message}")]
    Invalid { file: String, place: String, message: String },
    #[error("{file}: engine failure")]
    Engine { file: String, source: EngineError },
}

/// Deserializes `v`, naming the field that failed (`.occurred_at`,
/// `.days[2].date`) beside serde's message, which alone does not say where.
fn from_value_at<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else if path.starts_with('[') {
            path
        } else {
            format!(".{path}")
        };
        (at, e.into_inner().to_string())
    })
}

/// An event with its arrival (processing) time.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub event: ActivityEvent,
    pub arrives_at: DateTime<Utc>,
}

/// A parsed scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub file: String,
    pub name: String,
    pub policy: String,
    /// A policy loaded from a file named by `policy`, if it names one.
    pub custom_policy: Option<Policy>,
    pub calendars: Vec<SchoolCalendar>,
    pub roster: Vec<StudentRecord>,
    pub absence_reports: Vec<AbsenceReport>,
    pub events: Vec<Arrival>,
    pub now: DateTime<Utc>,
    pub expect: Expect,
}

impl Scenario {
    /// A simulated district as a scenario with no expectations: the world,
    /// its events in arrival order, and the simulation's end as `now`.
    pub fn from_world(world: rollcall_sim::World, name: &str) -> Scenario {
        Scenario {
            file: format!("<{name}>"),
            name: name.to_string(),
            policy: "mmsd".into(),
            custom_policy: None,
            calendars: world.calendars,
            roster: world.roster,
            absence_reports: world.absence_reports,
            events: world.events.into_iter().map(|e| Arrival { event: e.event, arrives_at: e.arrives_at }).collect(),
            now: world.end,
            expect: Expect::default(),
        }
    }
}

/// What a scenario expects. Determinations and outreach are partial records:
/// each names only the fields that matter.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub determinations: Vec<Map<String, Value>>,
    pub outreach: Vec<Map<String, Value>>,
    /// Every trigger raised is matched by a distinct expected entry.
    pub no_other_outreach: bool,
    /// Every determination key emitted is named by an expected entry.
    pub no_other_determinations: bool,
    /// When given, exactly these records are refused (`source`, `event_id`, `error_kind`).
    pub dead_letters: Option<Vec<Map<String, Value>>>,
}

const DETERMINATION_FIELDS: &[&str] = &[
    "determination_id",
    "student_id",
    "school_id",
    "scope",
    "date",
    "section_id",
    "policy",
    "status",
    "code",
    "attendance_type",
    "minutes",
    "contacts",
    "category",
    "rule",
    "evidence",
    "version",
    "finality",
    "decided_at",
];
const OUTREACH_FIELDS: &[&str] = &[
    "trigger_id",
    "student_id",
    "school_id",
    "kind",
    "recipient_role",
    "staff_id",
    "section_id",
    "window_start",
    "window_end",
    "reason",
    "evidence",
    "policy",
    "created_at",
];
const DEAD_LETTER_FIELDS: &[&str] = &["source", "event_id", "error_kind"];

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io { file: file.clone(), source })?;
        Scenario::parse(&text, &file, path.parent())
    }

    /// Parses scenario text; `file` names it in errors, `base` resolves a relative policy path.
    pub fn parse(text: &str, file: &str, base: Option<&Path>) -> Result<Scenario, ScenarioError> {
        let invalid =
            |place: &str, message: String| ScenarioError::Invalid { file: file.to_string(), place: place.to_string(), message };
        // A byte-order mark is not JSON, but editors write one: policy files
        // with one are read too.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let root: Value = serde_json::from_str(text)
            .map_err(|e| invalid(&format!("line {}, column {}", e.line(), e.column()), format!("not valid JSON: {e}")))?;
        let Value::Object(mut root) = root else { return Err(invalid("top level", "must be a JSON object".into())) };
        const TOP: &[&str] =
            &["name", "policy", "calendars", "roster", "absence_reports", "events", "now", "expect", "description"];
        if let Some(k) = root.keys().find(|k| !TOP.contains(&k.as_str())) {
            return Err(invalid(k, format!("unknown field `{k}` (expected one of {})", TOP.join(", "))));
        }
        let take_str = |root: &mut Map<String, Value>, k: &str| -> Result<String, ScenarioError> {
            match root.remove(k) {
                Some(Value::String(s)) => Ok(s),
                Some(_) => Err(invalid(k, "must be a string".into())),
                None => Err(invalid(k, "missing".into())),
            }
        };
        let name = take_str(&mut root, "name")?;
        let policy = take_str(&mut root, "policy")?;
        let custom_policy = if Policy::preset(&policy).is_some() {
            None
        } else {
            Some(Policy::resolve(&policy, base).map_err(|e| invalid("policy", rollcall_model::error_chain(&e)))?)
        };
        let now_text = take_str(&mut root, "now")?;
        let now = DateTime::parse_from_rfc3339(&now_text)
            .map_err(|e| invalid("now", format!("`{now_text}` is not an RFC 3339 instant: {e}")))?
            .with_timezone(&Utc);

        fn list<T: serde::de::DeserializeOwned>(
            root: &mut Map<String, Value>,
            key: &str,
            invalid: &dyn Fn(&str, String) -> ScenarioError,
        ) -> Result<Vec<(String, Map<String, Value>, T)>, ScenarioError> {
            let items = match root.remove(key) {
                None | Some(Value::Null) => return Ok(Vec::new()),
                Some(Value::Array(a)) => a,
                Some(_) => return Err(invalid(key, "must be an array".into())),
            };
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let place = format!("{key}[{i}]");
                    let Value::Object(obj) = v else { return Err(invalid(&place, "must be an object".into())) };
                    let t = from_value_at(Value::Object(obj.clone())).map_err(|(at, e)| invalid(&format!("{place}{at}"), e))?;
                    Ok((place, obj, t))
                })
                .collect()
        }
        let calendars: Vec<SchoolCalendar> = list(&mut root, "calendars", &invalid)?.into_iter().map(|x| x.2).collect();
        let roster: Vec<StudentRecord> = list(&mut root, "roster", &invalid)?.into_iter().map(|x| x.2).collect();
        let absence_reports: Vec<AbsenceReport> =
            list(&mut root, "absence_reports", &invalid)?.into_iter().map(|x| x.2).collect();

        let mut events = Vec::new();
        if let Some(v) = root.remove("events") {
            let Value::Array(items) = v else { return Err(invalid("events", "must be an array".into())) };
            for (i, v) in items.into_iter().enumerate() {
                let place = format!("events[{i}]");
                let Value::Object(mut obj) = v else { return Err(invalid(&place, "must be an object".into())) };
                let arrives = obj.remove("arrives_at");
                let event: ActivityEvent =
                    from_value_at(Value::Object(obj)).map_err(|(at, e)| invalid(&format!("{place}{at}"), e))?;
                let arrives_at = match arrives {
                    None | Some(Value::Null) => event.occurred_at,
                    Some(Value::String(s)) => DateTime::parse_from_rfc3339(&s)
                        .map_err(|e| invalid(&format!("{place}.arrives_at"), format!("`{s}` is not an RFC 3339 instant: {e}")))?
                        .with_timezone(&Utc),
                    Some(_) => return Err(invalid(&format!("{place}.arrives_at"), "must be a string".into())),
                };
                events.push(Arrival { event, arrives_at });
            }
        }

        let expect = match root.remove("expect") {
            None => return Err(invalid("expect", "missing".into())),
            Some(Value::Object(e)) => parse_expect(e, &invalid)?,
            Some(_) => return Err(invalid("expect", "must be an object".into())),
        };
        let s = Scenario {
            file: file.to_string(),
            name,
            policy,
            custom_policy,
            calendars,
            roster,
            absence_reports,
            events,
            now,
            expect,
        };
        s.check_references(&invalid)?;
        Ok(s)
    }

    /// Checks what can be checked before running: every event names a
    /// rostered student, every student a school with a calendar.
    fn check_references(&self, invalid: &dyn Fn(&str, String) -> ScenarioError) -> Result<(), ScenarioError> {
        let schools: Vec<&str> = self.calendars.iter().map(|c| c.school_id.as_str()).collect();
        for (i, s) in self.roster.iter().enumerate() {
            if !schools.contains(&s.school_id.as_str()) {
                return Err(invalid(
                    &format!("roster[{i}]"),
                    format!("student `{}` is at school `{}`, which has no calendar", s.student_id, s.school_id),
                ));
            }
        }
        Ok(())
    }
}

fn parse_expect(mut e: Map<String, Value>, invalid: &dyn Fn(&str, String) -> ScenarioError) -> Result<Expect, ScenarioError> {
    const KEYS: &[&str] = &["determinations", "outreach", "no_other_outreach", "no_other_determinations", "dead_letters"];
    if let Some(k) = e.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(invalid(&format!("expect.{k}"), format!("unknown field (expected one of {})", KEYS.join(", "))));
    }
    let entries = |v: Option<Value>, key: &str, fields: &[&str]| -> Result<Vec<Map<String, Value>>, ScenarioError> {
        let items = match v {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(invalid(&format!("expect.{key}"), "must be an array".into())),
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let place = format!("expect.{key}[{i}]");
                let Value::Object(m) = v else { return Err(invalid(&place, "must be an object".into())) };
                if let Some(k) = m.keys().find(|k| !fields.contains(&k.as_str())) {
                    return Err(invalid(&place, format!("unknown field `{k}` (expected one of {})", fields.join(", "))));
                }
                Ok(m)
            })
            .collect()
    };
    let determinations = entries(e.remove("determinations"), "determinations", DETERMINATION_FIELDS)?;
    for (i, d) in determinations.iter().enumerate() {
        for k in ["student_id", "scope", "date"] {
            if !d.contains_key(k) {
                return Err(invalid(&format!("expect.determinations[{i}]"), format!("`{k}` is needed to name the key")));
            }
        }
    }
    let outreach = entries(e.remove("outreach"), "outreach", OUTREACH_FIELDS)?;
    let mut flag = |key: &str| match e.remove(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(_) => Err(invalid(&format!("expect.{key}"), "must be true or false".into())),
    };
    let no_other_outreach = flag("no_other_outreach")?;
    let no_other_determinations = flag("no_other_determinations")?;
    let dead_letters = match e.remove("dead_letters") {
        None => None,
        v => Some(entries(v, "dead_letters", DEAD_LETTER_FIELDS)?),
    };
    for (i, d) in dead_letters.iter().flatten().enumerate() {
        let Some(kind) = d.get("error_kind") else { continue };
        let known = kind.as_str().map(|k| k.parse::<DeadLetterKind>());
        if !matches!(known, Some(Ok(_))) {
            return Err(invalid(
                &format!("expect.dead_letters[{i}].error_kind"),
                format!("{kind} is not a dead-letter kind (expected one of {})", DeadLetterKind::SYMBOLS.join(", ")),
            ));
        }
    }
    Ok(Expect { determinations, outreach, no_other_outreach, no_other_determinations, dead_letters })
}

/// A record the engine refused during a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Where in the scenario: `events[3]`, `absence_reports[0]`, ...
    pub source: String,
    pub event_id: Option<String>,
    pub error_kind: DeadLetterKind,
    pub message: String,
}

/// Everything a run produced.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    /// Every record emitted, in emission order.
    pub determinations: Vec<Determination>,
    pub outreach: Vec<OutreachTrigger>,
    pub dead_letters: Vec<DeadLetter>,
    pub events_applied: u64,
}

impl RunOutput {
    /// The latest version of every determination key, in key order.
    pub fn latest(&self) -> BTreeMap<String, &Determination> {
        let mut m: BTreeMap<String, &Determination> = BTreeMap::new();
        for d in &self.determinations {
            let k = d.key();
            if m.get(&k).map(|p| p.version < d.version).unwrap_or(true) {
                m.insert(k, d);
            }
        }
        m
    }
}

/// Runs a scenario on an engine over `store`.
pub fn run<S: KvStore>(s: &Scenario, store: S) -> Result<(RunOutput, Engine<S>), ScenarioError> {
    run_with(s, store, &mut RunOptions::default())
}

/// How a long run reports progress and bounds its buffered state.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Commit the store after this many events (0: only at the end).
    pub commit_every: usize,
    /// Called with (events done, events in all) as the run goes.
    pub progress: Option<&'a mut dyn FnMut(usize, usize)>,
    /// The engine's settings (the differential tests run both evaluations).
    pub engine: EngineConfig,
}

/// [`run`], with progress and periodic commits.
pub fn run_with<S: KvStore>(s: &Scenario, store: S, opts: &mut RunOptions) -> Result<(RunOutput, Engine<S>), ScenarioError> {
    let fatal = |source| ScenarioError::Engine { file: s.file.clone(), source };
    let invalid = |place: String, message: String| ScenarioError::Invalid { file: s.file.clone(), place, message };
    let mut engine = Engine::open(store, opts.engine.clone()).map_err(fatal)?;
    let mut calendars = s.calendars.clone();
    if let Some(p) = &s.custom_policy {
        // Calendars may name the policy by the scenario's path or by its id.
        for c in &mut calendars {
            if c.policy == s.policy {
                c.policy = p.id.clone();
            }
        }
        engine.register_policy(p.clone());
    }
    for (i, c) in calendars.into_iter().enumerate() {
        engine.load_calendar(c).map_err(|e| invalid(format!("calendars[{i}]"), e.to_string()))?;
    }
    for (i, r) in s.roster.iter().enumerate() {
        engine.upsert_student(r.clone()).map_err(|e| invalid(format!("roster[{i}]"), e.to_string()))?;
    }
    let mut out = RunOutput::default();
    // Absence reports arrive when they are reported.
    let mut reports: Vec<(usize, &AbsenceReport)> = s.absence_reports.iter().enumerate().collect();
    reports.sort_by_key(|(i, r)| (r.reported_at, *i));
    let mut next_report = 0;
    let mut apply_reports_until = |engine: &mut Engine<S>, t: DateTime<Utc>, out: &mut RunOutput| -> Result<(), ScenarioError> {
        while next_report < reports.len() && reports[next_report].1.reported_at <= t {
            let (i, r) = reports[next_report];
            next_report += 1;
            engine.advance(r.reported_at).map_err(fatal)?;
            match engine.apply_report(r) {
                Ok(_) => {}
                Err(ApplyError::Rejected(rej)) => out.dead_letters.push(DeadLetter {
                    source: format!("absence_reports[{i}]"),
                    event_id: None,
                    error_kind: rej.kind,
                    message: rej.message,
                }),
                Err(ApplyError::Fatal(e)) => return Err(fatal(e)),
            }
        }
        Ok(())
    };
    for (i, a) in s.events.iter().enumerate() {
        apply_reports_until(&mut engine, a.arrives_at, &mut out)?;
        engine.advance(a.arrives_at).map_err(fatal)?;
        match engine.apply_event(&a.event) {
            Ok(_) => {}
            Err(ApplyError::Rejected(rej)) => out.dead_letters.push(DeadLetter {
                source: format!("events[{i}]"),
                event_id: Some(a.event.event_id.clone()),
                error_kind: rej.kind,
                message: rej.message,
            }),
            Err(ApplyError::Fatal(e)) => return Err(fatal(e)),
        }
        collect(&mut engine, &mut out, s);
        let done = i + 1;
        if opts.commit_every > 0 && done % opts.commit_every == 0 {
            engine.commit().map_err(fatal)?;
            if let Some(p) = opts.progress.as_mut() {
                p(done, s.events.len());
            }
        }
    }
    if let Some(p) = opts.progress.as_mut() {
        p(s.events.len(), s.events.len());
    }
    apply_reports_until(&mut engine, s.now, &mut out)?;
    engine.advance(s.now).map_err(fatal)?;
    // What arrived at `now` itself is evaluated too.
    engine.flush().map_err(fatal)?;
    collect(&mut engine, &mut out, s);
    engine.commit().map_err(fatal)?;
    out.events_applied = engine.stats().events;
    Ok((out, engine))
}

fn collect<S: KvStore>(engine: &mut Engine<S>, out: &mut RunOutput, s: &Scenario) {
    for o in engine.take_outputs() {
        match o {
            Output::Determination(d) => out.determinations.push(d),
            Output::Outreach(t) => out.outreach.push(t),
            // Scenarios do not erase students.
            Output::Forgotten(_) => {}
            // An event that waited for its student or school and was refused
            // later: named by its place in the file, like any refusal.
            Output::Refused(r) => {
                let at = s.events.iter().position(|a| a.event.event_id == r.event.event_id);
                out.dead_letters.push(DeadLetter {
                    source: at.map(|i| format!("events[{i}]")).unwrap_or_else(|| "events".into()),
                    event_id: Some(r.event.event_id),
                    error_kind: r.rejection.kind,
                    message: r.rejection.message,
                });
            }
        }
    }
}

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// The determination key, trigger description or dead-letter source.
    pub key: String,
    pub expected: String,
    pub actual: String,
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The fields on which `actual` differs from `expected`: (field, expected,
/// actual). `evidence` is a set of ids: its order is not part of the contract.
fn matches(expected: &Map<String, Value>, actual: &Value) -> Vec<(String, String, String)> {
    expected
        .iter()
        .filter_map(|(k, want)| {
            let got = actual.get(k).unwrap_or(&Value::Null);
            let same = if k == "evidence" { as_set(got) == as_set(want) } else { got == want };
            (!same).then(|| (k.clone(), show(want), show(got)))
        })
        .collect()
}

/// An array's items as a sorted set of their texts (`None` if not an array).
fn as_set(v: &Value) -> Option<Vec<String>> {
    let mut items: Vec<String> = v.as_array()?.iter().map(show).collect();
    items.sort();
    items.dedup();
    Some(items)
}

/// The determination key an expected entry names.
fn expected_key(exp: &Map<String, Value>) -> String {
    let student = exp.get("student_id").map(show).unwrap_or_default();
    let scope = exp.get("scope").map(show).unwrap_or_default();
    let date = exp.get("date").map(show).unwrap_or_default();
    match exp.get("section_id") {
        Some(Value::String(sec)) => format!("{student}|{scope}|{date}|{sec}"),
        _ => format!("{student}|{scope}|{date}"),
    }
}

/// Compares a run's output with the scenario's expectations.
pub fn check(s: &Scenario, out: &RunOutput) -> Vec<Difference> {
    let mut diffs = Vec::new();
    let latest = out.latest();
    for exp in &s.expect.determinations {
        let key = expected_key(exp);
        match latest.get(&key) {
            None => diffs.push(Difference {
                key,
                expected: Value::Object(exp.clone()).to_string(),
                actual: "no determination".into(),
            }),
            Some(d) => {
                let actual = serde_json::to_value(d).unwrap_or(Value::Null);
                for (field, want, got) in matches(exp, &actual) {
                    diffs.push(Difference { key: format!("{key} {field}"), expected: want, actual: got });
                }
            }
        }
    }
    if s.expect.no_other_determinations {
        let named: std::collections::HashSet<String> = s.expect.determinations.iter().map(expected_key).collect();
        for (k, d) in latest.iter().filter(|(k, _)| !named.contains(*k)) {
            diffs.push(Difference {
                key: k.clone(),
                expected: "no other determinations".into(),
                actual: format!("{} {}", d.code, d.finality),
            });
        }
    }
    let triggers: Vec<Value> = out.outreach.iter().map(|t| serde_json::to_value(t).unwrap_or(Value::Null)).collect();
    let mut used = vec![false; triggers.len()];
    for exp in &s.expect.outreach {
        let found = triggers.iter().enumerate().find(|(i, t)| !used[*i] && matches(exp, t).is_empty());
        match found {
            Some((i, _)) => used[i] = true,
            None => {
                // Name the nearest trigger of the same student and kind, if any.
                let near = triggers.iter().find(|t| {
                    t.get("student_id") == exp.get("student_id")
                        && (exp.get("kind").is_none() || t.get("kind") == exp.get("kind"))
                });
                diffs.push(Difference {
                    key: format!("outreach {}", Value::Object(exp.clone())),
                    expected: "a matching trigger".into(),
                    actual: near.map(|t| format!("nearest: {}", brief_trigger(t))).unwrap_or_else(|| "none".into()),
                });
            }
        }
    }
    if s.expect.no_other_outreach {
        // One to one: a trigger raised twice is matched once, and the second is news.
        for (t, u) in triggers.iter().zip(&used) {
            if !*u {
                diffs.push(Difference {
                    key: format!("outreach {}", brief_trigger(t)),
                    expected: "no other outreach".into(),
                    actual: "raised".into(),
                });
            }
        }
    }
    let dl: Vec<Value> = out.dead_letters.iter().map(|d| serde_json::to_value(d).unwrap_or(Value::Null)).collect();
    match &s.expect.dead_letters {
        Some(expected) => {
            let mut used = vec![false; dl.len()];
            for exp in expected {
                match dl.iter().enumerate().find(|(i, d)| !used[*i] && matches(exp, d).is_empty()) {
                    Some((i, _)) => used[i] = true,
                    None => diffs.push(Difference {
                        key: format!("dead letter {}", Value::Object(exp.clone())),
                        expected: "refused".into(),
                        actual: "not refused".into(),
                    }),
                }
            }
            for (d, u) in out.dead_letters.iter().zip(&used) {
                if !u {
                    diffs.push(Difference {
                        key: format!("{} ({})", d.source, d.event_id.as_deref().unwrap_or("-")),
                        expected: "accepted".into(),
                        actual: format!("refused: {}: {}", d.error_kind, d.message),
                    });
                }
            }
        }
        None => {
            // Late arrivals past the horizon are part of normal operation; anything else is bad input.
            for d in out.dead_letters.iter().filter(|d| d.error_kind != DeadLetterKind::TooLate) {
                diffs.push(Difference {
                    key: format!("{} ({})", d.source, d.event_id.as_deref().unwrap_or("-")),
                    expected: "accepted".into(),
                    actual: format!("refused: {}: {}", d.error_kind, d.message),
                });
            }
        }
    }
    diffs
}

fn brief_trigger(t: &Value) -> String {
    let f = |k: &str| t.get(k).map(show).unwrap_or_default();
    format!(
        "{} {} to {} (staff {}, section {}, {}..{})",
        f("student_id"),
        f("kind"),
        f("recipient_role"),
        f("staff_id"),
        f("section_id"),
        f("window_start"),
        f("window_end")
    )
}

/// Scenario files under a directory, sorted (for `--dir` style arguments and tests).
pub fn scenario_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().map(|e| e == "json").unwrap_or(false))
        .collect();
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod check_tests {
    use super::*;
    use serde_json::json;

    fn scenario(expect: Value) -> Scenario {
        let text = json!({
            "name": "t", "policy": "mmsd", "calendars": [], "roster": [], "events": [],
            "now": "2020-10-07T00:00:00Z", "expect": expect,
        });
        Scenario::parse(&text.to_string(), "t.json", None).expect("a valid scenario")
    }

    fn det(student: &str, date: &str, code: &str, evidence: &[&str]) -> Determination {
        serde_json::from_value(json!({
            "determination_id": format!("{student}|DAY|{date}#1"), "student_id": student, "school_id": "x",
            "scope": "DAY", "date": date, "policy": "mmsd", "status": "PRESENT", "code": code, "rule": "r",
            "evidence": evidence, "version": 1, "finality": "FINAL", "decided_at": "2020-10-06T05:00:00Z",
        }))
        .expect("a valid determination")
    }

    fn trigger(student: &str, kind: &str) -> OutreachTrigger {
        serde_json::from_value(json!({
            "trigger_id": format!("{kind}-{student}"), "student_id": student, "school_id": "x", "kind": kind,
            "recipient_role": "ATTENDANCE_TEAM", "window_start": "2020-10-05", "window_end": "2020-10-05",
            "reason": "r", "policy": "mmsd", "created_at": "2020-10-06T05:00:00Z",
        }))
        .expect("a valid trigger")
    }

    fn out(determinations: Vec<Determination>, outreach: Vec<OutreachTrigger>) -> RunOutput {
        RunOutput { determinations, outreach, dead_letters: vec![], events_applied: 0 }
    }

    #[test]
    fn a_trigger_raised_twice_fails_no_other_outreach() {
        let s = scenario(json!({"outreach": [{"student_id": "s1", "kind": "CHRONIC_ABSENCE"}], "no_other_outreach": true}));
        let once = out(vec![], vec![trigger("s1", "CHRONIC_ABSENCE")]);
        assert!(check(&s, &once).is_empty());
        let twice = out(vec![], vec![trigger("s1", "CHRONIC_ABSENCE"), trigger("s1", "CHRONIC_ABSENCE")]);
        let d = check(&s, &twice);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].expected, "no other outreach");
        // Without the flag the second one is not a difference.
        let lax = scenario(json!({"outreach": [{"student_id": "s1", "kind": "CHRONIC_ABSENCE"}]}));
        assert!(check(&lax, &twice).is_empty());
    }

    #[test]
    fn two_expected_entries_need_two_triggers() {
        let s = scenario(json!({"outreach": [{"student_id": "s1"}, {"student_id": "s1"}]}));
        assert_eq!(check(&s, &out(vec![], vec![trigger("s1", "LOW_CONTACT")])).len(), 1);
        assert!(check(&s, &out(vec![], vec![trigger("s1", "LOW_CONTACT"), trigger("s1", "SOCIAL_WORKER")])).is_empty());
    }

    #[test]
    fn no_other_determinations_names_every_other_key() {
        let s = scenario(json!({
            "determinations": [{"student_id": "s1", "scope": "DAY", "date": "2020-10-05", "code": "P"}],
            "no_other_determinations": true,
        }));
        let run = out(vec![det("s1", "2020-10-05", "P", &[]), det("s2", "2020-10-05", "AU", &[])], vec![]);
        let d = check(&s, &run);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].key, "s2|DAY|2020-10-05");
        assert!(check(&s, &out(vec![det("s1", "2020-10-05", "P", &[])], vec![])).is_empty());
    }

    #[test]
    fn evidence_is_compared_as_a_set() {
        let s = scenario(json!({
            "determinations": [{"student_id": "s1", "scope": "DAY", "date": "2020-10-05", "evidence": ["b", "a"]}],
        }));
        assert!(check(&s, &out(vec![det("s1", "2020-10-05", "P", &["a", "b"])], vec![])).is_empty());
        assert_eq!(check(&s, &out(vec![det("s1", "2020-10-05", "P", &["a"])], vec![])).len(), 1);
        assert_eq!(check(&s, &out(vec![det("s1", "2020-10-05", "P", &["a", "b", "c"])], vec![])).len(), 1);
    }

    #[test]
    fn the_flags_must_be_booleans() {
        let text = json!({
            "name": "t", "policy": "mmsd", "calendars": [], "roster": [], "events": [],
            "now": "2020-10-07T00:00:00Z", "expect": {"no_other_determinations": "yes"},
        });
        let e = Scenario::parse(&text.to_string(), "t.json", None).unwrap_err().to_string();
        assert!(e.contains("expect.no_other_determinations") && e.contains("true or false"), "{e}");
    }

    #[test]
    fn a_dead_letter_kind_must_be_one_of_the_vocabulary() {
        let parse = |kind: Value| {
            let text = json!({
                "name": "t", "policy": "mmsd", "calendars": [], "roster": [], "events": [],
                "now": "2020-10-07T00:00:00Z", "expect": {"dead_letters": [{"source": "events[0]"}, {"error_kind": kind}]},
            });
            Scenario::parse(&text.to_string(), "t.json", None)
        };
        for k in DeadLetterKind::ALL {
            assert!(parse(json!(k.as_str())).is_ok(), "{k}");
        }
        for bad in [json!("UNKNOWN_TOPIC"), json!("too_late"), json!(3)] {
            let e = parse(bad.clone()).unwrap_err().to_string();
            assert!(e.contains("expect.dead_letters[1].error_kind") && e.contains("is not a dead-letter kind"), "{bad}: {e}");
            assert!(e.contains("TOO_LATE") && e.contains("NOT_AVRO"), "{e}");
        }
        // A refusal of the run and an expected entry match by the kind's wire name.
        let s = parse(json!("TOO_LATE")).unwrap();
        let refused =
            DeadLetter { source: "events[0]".into(), event_id: None, error_kind: DeadLetterKind::TooLate, message: "m".into() };
        let out = RunOutput { dead_letters: vec![refused.clone(), refused], ..RunOutput::default() };
        assert!(check(&s, &out).is_empty(), "{:?}", check(&s, &out));
    }
}
