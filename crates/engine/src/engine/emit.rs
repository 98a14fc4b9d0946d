//! Evaluation and versioning: the windows that records touched (or that a
//! close reached) are evaluated by the policy's rules, and an outcome is
//! emitted as a new version of its determination only when it is news:
//! decided for the first time, changed, final, or a correction of a final one.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rollcall_model::{Determination, Finality, StudentRecord};
use rollcall_policy::Rule;

use super::memo::WeekSection;
use crate::eval::explain::{self, Explained};
use crate::eval::reads::{self, Kinds};
use crate::eval::{self, DayInput, Outcome};
use crate::kv::KvStore;
use crate::school::{FinalizeKey, School};
use crate::state::{DayRecord, Emitted};

use super::{Engine, EngineError, Output};

impl<S: KvStore> Engine<S> {
    pub(super) fn evaluate_touched(&mut self) -> Result<(), EngineError> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let at = self.clock.unwrap_or_default();
        let mut dirty = std::mem::take(&mut self.dirty);
        // In the order of the ids, as before numbers: outputs must not
        // depend on the order in which this process met its students.
        let names = &self.names;
        // A window touched by a fact its rule reads sorts first, and is the one kept.
        dirty.sort_unstable_by(|a, b| (names.name(a.0), a.1, a.2, !a.3).cmp(&(names.name(b.0), b.1, b.2, !b.3)));
        dirty.dedup_by(|later, kept| (later.0, later.1, later.2) == (kept.0, kept.1, kept.2));
        for touch in dirty {
            let (no, date, week, _) = touch;
            let Some(student) = self.student_by_no(no)? else { continue };
            let Some(school) = self.schools.get(&student.school_id).cloned() else { continue };
            if self.unchanged_since_evaluated(touch, at) {
                self.stats.windows_skipped += 1;
                continue;
            }
            if week {
                let sections = self.reevaluate_week(no, &student, &school, date, false, at)?;
                self.note_week_evaluated(no, date, &school, &student, sections);
            } else {
                let still_reads = self.reevaluate_day(no, &student, &school, date, None, at)?;
                self.note_evaluated(no, date, &school, &student, still_reads);
            }
            self.stats.windows_evaluated += 1;
        }
        Ok(())
    }

    /// Evaluates a student's day and emits what changed. With `closing`, the
    /// windows closed by one of those rules become FINAL. Returns the kinds
    /// of fact that could still change what it decided.
    pub(super) fn reevaluate_day(
        &mut self,
        no: u32,
        student: &StudentRecord,
        school: &School,
        date: NaiveDate,
        closing: Option<&[FinalizeKey]>,
        at: DateTime<Utc>,
    ) -> Result<Kinds, EngineError> {
        let Some(day) = school.instructional(date) else { return Ok(0) };
        let record = self.load_day(no, date)?;
        let next = match date.succ_opt() {
            Some(d1) if eval::reads_next_day(&school.policy) => self.day_record(no, d1)?,
            _ => None,
        };
        let input = DayInput { school, day, student, record: &record, next: next.as_deref() };
        if closing.is_none() && at <= self.closes_at(school, student, date) {
            if let Some(r) = input.unverified_hardship() {
                self.ask_to_verify_hardship(student, school, date, r, at)?;
            }
        }
        let outcomes = match &school.policy.rule {
            Rule::Blocks(p) if p.teacher_follow_up && closing.is_none() => {
                let blocks = eval::block_attendance(&input);
                self.schedule_follow_ups(&input, &blocks)?;
                eval::blocks_day(&input, p, &blocks).into_iter().collect()
            }
            _ => eval::evaluate_day(&input),
        };
        let mut all_final = !outcomes.is_empty();
        let mut changed_final = false;
        for o in &outcomes {
            // A window whose close fired before this student was known (a
            // new enrollee's parked first day) is final as soon as it is decided.
            let finalize = match closing {
                Some(rules) => rules.contains(&o.closes_by),
                None => at >= self.finalize_instant(school, date, o.closes_by),
            };
            let (emitted, now_final) = self.emit(no, student, school, o, finalize, at, || explain::explain_day(&input, o))?;
            all_final &= now_final;
            changed_final |= emitted && now_final;
        }
        if all_final && changed_final {
            self.update_year(student, school, date, &outcomes, at)?;
        }
        Ok(reads::still_read(&input, &outcomes))
    }

    pub(super) fn reevaluate_week(
        &mut self,
        no: u32,
        student: &StudentRecord,
        school: &School,
        monday: NaiveDate,
        finalize: bool,
        at: DateTime<Utc>,
    ) -> Result<Vec<WeekSection>, EngineError> {
        let mut records = Vec::with_capacity(7);
        for d in 0..7 {
            let date = monday + Duration::days(d);
            if let Some(rec) = self.day_record(no, date)? {
                records.push((date, rec));
            }
        }
        let days: Vec<(NaiveDate, &DayRecord)> = records.iter().map(|(d, r)| (*d, &**r)).collect();
        let outcomes = eval::evaluate_week(school, student, monday, &days);
        for o in &outcomes {
            self.emit(no, student, school, o, finalize, at, || explain::explain_week(school, student, &days, o))?;
        }
        // (section, contacts): what the low-contact check reads; and the
        // days with a contact, which a flush's memo keeps.
        Ok(outcomes
            .iter()
            .filter_map(|o| {
                Some(WeekSection {
                    section: o.section?.to_string(),
                    contacts: o.contacts.unwrap_or(0) as u32,
                    days: o.contact_days,
                })
            })
            .collect())
    }

    /// Versions and emits an outcome if it is news. Returns (emitted, final).
    /// `explain` is called only for an outcome that is emitted.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        no: u32,
        student: &StudentRecord,
        school: &School,
        o: &Outcome,
        finalize: bool,
        at: DateTime<Utc>,
        explain: impl FnOnce() -> Explained,
    ) -> Result<(bool, bool), EngineError> {
        let key = self.emitted_key(no, o.date, o.scope, o.section);
        let prev = self.load_emitted(key)?;
        let differs = |p: &Emitted| {
            p.status != o.status
                || p.code != o.code
                || p.category.as_deref() != o.category
                || p.minutes != o.minutes
                || p.contacts != o.contacts
        };
        let finality = match &prev {
            Some(p) if p.is_final() => {
                if differs(p) {
                    Finality::Correction
                } else {
                    return Ok((false, true));
                }
            }
            Some(p) => {
                if finalize {
                    Finality::Final
                } else if o.decided() && differs(p) {
                    Finality::Provisional
                } else {
                    return Ok((false, false));
                }
            }
            None => {
                if finalize {
                    Finality::Final
                } else if o.decided() {
                    Finality::Provisional
                } else {
                    return Ok((false, false));
                }
            }
        };
        let version = prev.as_ref().map(|p| p.version).unwrap_or(0) + 1;
        let em = Emitted {
            version,
            status: o.status,
            code: o.code.to_string(),
            category: o.category.map(str::to_string),
            minutes: o.minutes,
            contacts: o.contacts,
            finality,
        };
        self.emitted.set(key, em);
        let det_key = rollcall_model::determination_key(&student.student_id, o.scope, o.date, o.section);
        let Explained { evidence_detail, looked_for, seen } = explain();
        self.out.push(Output::Determination(Determination {
            determination_id: format!("{det_key}#{version}"),
            student_id: student.student_id.clone(),
            school_id: student.school_id.clone(),
            scope: o.scope,
            date: o.date,
            section_id: o.section.map(str::to_string),
            policy: school.policy.id.clone(),
            status: o.status,
            code: o.code.to_string(),
            attendance_type: o.attendance_type,
            minutes: o.minutes,
            contacts: o.contacts,
            category: o.category.map(str::to_string),
            rule: o.rule.to_string(),
            evidence: o.evidence.iter().map(|e| e.to_string()).collect(),
            version: version as i32,
            finality,
            decided_at: at,
            evidence_detail,
            looked_for,
            seen,
        }));
        self.stats.determinations += 1;
        if finality == Finality::Correction {
            self.stats.corrections += 1;
        }
        Ok((true, finality != Finality::Provisional))
    }
}
