//! The rows the reports are made from, as the sink's tables hold them.

use chrono::NaiveDate;

/// A DAY determination (table `determinations`, scope 'DAY').
#[derive(Debug, Clone, PartialEq)]
pub struct DayRow {
    pub student_id: String,
    pub date: NaiveDate,
    pub status: String,
    pub attendance_type: Option<String>,
    pub minutes: Option<i64>,
    pub category: Option<String>,
}

impl DayRow {
    pub fn is_present(&self) -> bool {
        self.status == "PRESENT" || self.status == "PRESENT_REMOTE"
    }

    pub fn is_absent(&self) -> bool {
        self.status == "ABSENT_EXCUSED" || self.status == "ABSENT_UNEXCUSED"
    }

    /// A day counted toward a rate: every status but EXEMPT.
    pub fn counts(&self) -> bool {
        self.status != "EXEMPT"
    }
}

/// A WEEK determination of a class (scope 'WEEK' with a section).
#[derive(Debug, Clone, PartialEq)]
pub struct WeekRow {
    pub student_id: String,
    pub week: NaiveDate,
    pub section_id: String,
    pub code: String,
    pub contacts: Option<i32>,
}

/// An outreach trigger (table `outreach_triggers`).
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRow {
    pub student_id: String,
    pub kind: String,
    pub section_id: Option<String>,
    pub window_start: NaiveDate,
    pub window_end: NaiveDate,
    pub reason: String,
}

/// A student of the school (table `students`).
#[derive(Debug, Clone, PartialEq)]
pub struct StudentRow {
    pub student_id: String,
    pub groups: Vec<String>,
}

/// Everything a report may read, for one school and span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Data {
    pub days: Vec<DayRow>,
    pub weeks: Vec<WeekRow>,
    pub triggers: Vec<TriggerRow>,
    pub students: Vec<StudentRow>,
}
