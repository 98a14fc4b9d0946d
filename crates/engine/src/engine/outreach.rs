//! Outreach: the school-year counts a closed day adds to (truancy referral,
//! chronic absence tiers), what a closed week calls for (low contact, the
//! social worker), the request to verify a hardship report, and `raise`,
//! through which every trigger goes so that each is raised once.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rollcall_model::{OutreachKind, OutreachTrigger, RecipientRole, Scope, Status, StudentRecord};
use rollcall_policy::{ContactThreshold, Policy, Rule};

use crate::eval::Outcome;
use crate::kv::{KvStore, Table};
use crate::school::School;
use crate::state::{self, DayMark, Emitted, ReportFact, YearRecord};

use super::{Engine, EngineError, Output};

impl<S: KvStore> Engine<S> {
    /// Counts a closed day toward the school year and raises the outreach
    /// that its counts call for.
    pub(super) fn update_year(
        &mut self,
        student: &StudentRecord,
        school: &School,
        date: NaiveDate,
        outcomes: &[Outcome],
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let day = outcomes.iter().find(|o| o.scope == Scope::Day);
        let mark = match day {
            Some(d) => DayMark { absent: d.status.is_absent(), unexcused: d.status == Status::AbsentUnexcused },
            None => {
                let sections: Vec<&Outcome> = outcomes.iter().filter(|o| o.scope == Scope::Section).collect();
                if sections.is_empty() {
                    return Ok(());
                }
                let absent = sections.iter().all(|o| o.status.is_absent());
                DayMark { absent, unexcused: absent && sections.iter().any(|o| o.status == Status::AbsentUnexcused) }
            }
        };
        let sy = crate::school::school_year_of(date);
        let key = state::year_key(&student.student_id, sy);
        let mut year = match self.store.get(Table::Year, &key)? {
            None => YearRecord::default(),
            Some(b) => YearRecord::decode(&b).map_err(|source| EngineError::Corrupt {
                table: Table::Year,
                key: format!("{}/{sy}", student.student_id),
                source,
            })?,
        };
        year.set_mark(date, mark);
        let policy = school.policy.clone();
        let year_start = NaiveDate::from_ymd_opt(sy, 7, 1).unwrap_or(date);
        if let Rule::ByMode(p) = &policy.rule {
            if p.truancy_referral_after > 0 && !year.truancy_referred && year.unexcused() >= p.truancy_referral_after {
                year.truancy_referred = true;
                let evidence = day_keys(student, &year, |m| m.unexcused);
                self.raise(Raise {
                    student,
                    policy: &policy,
                    kind: OutreachKind::TruancyReferral,
                    role: RecipientRole::AttendanceOfficer,
                    staff: None,
                    section: None,
                    window: (year_start, date),
                    reason: format!(
                        "{} unexcused absences this school year (referral at {})",
                        year.unexcused(),
                        p.truancy_referral_after
                    ),
                    evidence,
                    discriminator: sy.to_string(),
                    at,
                })?;
            }
        }
        let ca = &policy.chronic_absence;
        if ca.enabled && year.enrolled() >= ca.min_enrolled_days {
            let rate = year.absent() as f64 * 100.0 / year.enrolled() as f64;
            let tier = ca.tiers_percent.iter().filter(|t| rate >= **t).count() as u8;
            if tier > year.tier {
                const TIERS: [&str; 4] = ["satisfactory", "at risk", "moderate chronic absence", "severe chronic absence"];
                let evidence = day_keys(student, &year, |m| m.absent);
                self.raise(Raise {
                    student,
                    policy: &policy,
                    kind: OutreachKind::ChronicAbsence,
                    role: RecipientRole::AttendanceTeam,
                    staff: None,
                    section: None,
                    window: (year.marks.first().map(|m| m.0).unwrap_or(date), date),
                    reason: format!(
                        "{}: absent {} of {} enrolled days ({rate:.1}%)",
                        TIERS[tier as usize],
                        year.absent(),
                        year.enrolled()
                    ),
                    evidence,
                    discriminator: format!("{sy}-tier{tier}-{date}"),
                    at,
                })?;
            }
            year.tier = tier;
        }
        self.store.put(Table::Year, &key, &year.encode())?;
        Ok(())
    }

    pub(super) fn raise(&mut self, r: Raise) -> Result<(), EngineError> {
        let id_src = format!(
            "{}|{}|{}|{}|{}|{}",
            r.student.student_id,
            r.kind,
            r.section.as_deref().unwrap_or(""),
            r.window.0,
            r.window.1,
            r.discriminator
        );
        let trigger_id =
            format!("{}-{:016x}", r.kind.as_str().to_ascii_lowercase(), xxhash_rust::xxh3::xxh3_64(id_src.as_bytes()));
        if self.store.get(Table::Trigger, trigger_id.as_bytes())?.is_some() {
            return Ok(());
        }
        self.store.put(Table::Trigger, trigger_id.as_bytes(), &[])?;
        self.stats.outreach += 1;
        self.out.push(Output::Outreach(OutreachTrigger {
            trigger_id,
            student_id: r.student.student_id.clone(),
            school_id: r.student.school_id.clone(),
            kind: r.kind,
            recipient_role: r.role,
            staff_id: r.staff,
            section_id: r.section,
            window_start: r.window.0,
            window_end: r.window.1,
            reason: r.reason,
            evidence: r.evidence,
            policy: r.policy.id.clone(),
            created_at: r.at,
        }));
        Ok(())
    }

    /// cms: one TEACHER_FOLLOW_UP to the homeroom teacher for a guardian's
    /// hardship report that no teacher has verified yet, while the day is
    /// open, so that the verification can happen within the D+1 window.
    pub(super) fn ask_to_verify_hardship(
        &mut self,
        student: &StudentRecord,
        school: &School,
        date: NaiveDate,
        report: &ReportFact,
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let policy = school.policy.clone();
        self.raise(Raise {
            student,
            policy: &policy,
            kind: OutreachKind::TeacherFollowUp,
            role: RecipientRole::Teacher,
            staff: student.homeroom_staff_id.clone(),
            section: student.homeroom_section_id.clone(),
            window: (date, date),
            reason: format!(
                "verify the hardship: the family reported {} for {date}; the student counts as present by other \
                 evidence only once a teacher has two-way contact with the student or family on {date} or the next day",
                report.reason
            ),
            evidence: vec![report.report_id.clone()],
            discriminator: "verify-hardship".into(),
            at,
        })
    }

    pub(super) fn close_week(
        &mut self,
        no: u32,
        student: &StudentRecord,
        school: &School,
        monday: NaiveDate,
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let policy = school.policy.clone();
        match &policy.rule {
            Rule::WeeklyContacts(p) => {
                let outcomes = self.reevaluate_week(no, student, school, monday, true, at)?;
                for threshold in &p.low_contact {
                    for w in &outcomes {
                        self.check_low_contact(no, student, school, &policy, threshold, monday, &w.section, w.contacts, at)?;
                    }
                }
            }
            Rule::Blocks(p) if p.social_worker_after_days > 0 => {
                let sid = &student.student_id;
                let start = state::day_key(sid, monday);
                let end = state::day_key(sid, monday + Duration::days(7));
                let mut days = Vec::new();
                for (k, v) in self.store.range(Table::Emitted, &start, &end, usize::MAX)? {
                    let Some((date, Scope::Day, None)) = state::parse_emitted_key(sid, &k) else { continue };
                    let em = Emitted::decode(&v).map_err(|source| EngineError::Corrupt {
                        table: Table::Emitted,
                        key: format!("{sid}/{date}"),
                        source,
                    })?;
                    if em.category.as_ref().map(|c| p.social_worker_categories.contains(c)).unwrap_or(false) {
                        days.push((date, em.category.unwrap_or_default()));
                    }
                }
                if days.len() as u32 >= p.social_worker_after_days {
                    let listed: Vec<String> = days.iter().map(|(d, c)| format!("{d} {c}")).collect();
                    self.raise(Raise {
                        student,
                        policy: &policy,
                        kind: OutreachKind::SocialWorker,
                        role: RecipientRole::SocialWorker,
                        staff: None,
                        section: None,
                        window: (monday, monday + Duration::days(6)),
                        reason: format!("{} days last week missed whole or in part: {}", days.len(), listed.join(", ")),
                        evidence: days
                            .iter()
                            .map(|(d, _)| rollcall_model::determination_key(sid, Scope::Day, *d, None))
                            .collect(),
                        discriminator: String::new(),
                        at,
                    })?;
                }
            }
            _ => {}
        }
        self.purge_before(no, student, school, monday)
    }

    #[allow(clippy::too_many_arguments)]
    fn check_low_contact(
        &mut self,
        no: u32,
        student: &StudentRecord,
        school: &School,
        policy: &Policy,
        threshold: &ContactThreshold,
        week: NaiveDate,
        section: &str,
        contacts: u32,
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let (weeks, max) = (threshold.weeks, threshold.max_contacts);
        let mut total = contacts;
        let mut evidence = vec![format!(
            "{}#contacts={}",
            rollcall_model::determination_key(&student.student_id, Scope::Week, week, Some(section)),
            total
        )];
        for back in 1..weeks {
            let monday = week - Duration::days(7 * back as i64);
            if !school.week_has_instruction(monday) {
                return Ok(());
            }
            let key = self.emitted_key(no, monday, Scope::Week, Some(section));
            let Some(prev) = self.load_emitted(key)? else { return Ok(()) };
            let c = prev.contacts.unwrap_or(0) as u32;
            total += c;
            evidence.push(format!(
                "{}#contacts={c}",
                rollcall_model::determination_key(&student.student_id, Scope::Week, monday, Some(section))
            ));
        }
        if total > max {
            return Ok(());
        }
        let staff = student.enrollment(section).map(|e| e.staff_id.clone());
        let first = week - Duration::days(7 * (weeks as i64 - 1));
        self.raise(Raise {
            student,
            policy,
            kind: OutreachKind::LowContact,
            role: threshold.recipient_role,
            staff,
            section: Some(section.to_string()),
            window: (first, week + Duration::days(6)),
            reason: format!("{total} contact day(s) over {weeks} consecutive weeks (at most {max})"),
            evidence,
            // Thresholds of one length differ by their bound and recipient.
            discriminator: format!("{max}-{}", threshold.recipient_role),
            at,
        })
    }
}

/// The DAY determination keys of the year's marked days that match.
fn day_keys(student: &StudentRecord, year: &YearRecord, keep: impl Fn(&DayMark) -> bool) -> Vec<String> {
    year.marks
        .iter()
        .filter(|(_, m)| keep(m))
        .map(|(d, _)| rollcall_model::determination_key(&student.student_id, Scope::Day, *d, None))
        .collect()
}

pub(super) struct Raise<'a> {
    pub(super) student: &'a StudentRecord,
    pub(super) policy: &'a Policy,
    pub(super) kind: OutreachKind,
    pub(super) role: RecipientRole,
    pub(super) staff: Option<String>,
    pub(super) section: Option<String>,
    pub(super) window: (NaiveDate, NaiveDate),
    pub(super) reason: String,
    pub(super) evidence: Vec<String>,
    /// Distinguishes triggers of one kind and window that are separate events.
    pub(super) discriminator: String,
    pub(super) at: DateTime<Utc>,
}
