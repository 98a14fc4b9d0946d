//! School calendars as CSV, to the `sis.calendar.v1` [`SchoolCalendar`]s.
//!
//! One row per school date, header exactly:
//!
//! ```text
//! school_id,timezone,policy,date,instructional,day_type,start,end
//! lincoln-ms,America/Chicago,mmsd,2025-01-06,true,FULL,08:00,15:00
//! lincoln-ms,America/Chicago,mmsd,2025-01-07,true,EARLY_RELEASE,08:00,12:30
//! lincoln-ms,America/Chicago,mmsd,2025-01-08,true,ASYNC,08:00,15:00
//! lincoln-ms,America/Chicago,mmsd,2025-01-20,false,,,
//! ```
//!
//! - `school_id`: the SIS school id (OneRoster: the school org's `sourcedId`).
//! - `timezone`: an IANA zone name (`America/Chicago`), checked against the
//!   time zone database; `policy`: a preset id or the id of a policy file
//!   the processor loads (this reader cannot tell which policy files exist;
//!   the processor refuses an unknown one as `UNKNOWN_POLICY`). Both must be
//!   the same on every row of a school: a calendar has one of each.
//! - `date`: `YYYY-MM-DD`, once per school. A date not listed is not an
//!   instructional day.
//! - `instructional`: `true` or `false`.
//! - `day_type`: `FULL`, `EARLY_RELEASE` or `ASYNC`; it may be empty on a
//!   day that is not instructional (it is then `FULL`, which nothing reads).
//! - `start`, `end`: the school day, `HH:MM` in the school's zone, start
//!   before end; required on instructional days, may be empty otherwise.
//!
//! Schools come out in the order of their first row, their days by date.
//! Every bad row is named by line and column and left out; the header is
//! the only error that stops the reading.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::NaiveDate;
use rollcall_model::{CalendarDay, DayType, LocalTime, SchoolCalendar};

use crate::identity::{by_line, read_csv};
use crate::{IngestError, Rejected};

/// The header, exactly.
pub const CSV_HEADER: [&str; 8] = ["school_id", "timezone", "policy", "date", "instructional", "day_type", "start", "end"];

/// The calendars of a file, less its bad rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendars {
    pub calendars: Vec<SchoolCalendar>,
    /// Bad rows in line order; each was left out.
    pub errors: Vec<IngestError>,
}

/// Reads the CSV form (see the module documentation). Fails only on the
/// header; row errors are in [`Calendars::errors`].
pub fn read(bytes: &[u8]) -> Result<Calendars, Rejected> {
    let (rows, mut errors) = read_csv(bytes, &CSV_HEADER)?;
    let mut calendars: Vec<SchoolCalendar> = Vec::new();
    // school → (index in calendars, line of its first row, line of each date)
    let mut schools: HashMap<String, (usize, u64, HashMap<NaiveDate, u64>)> = HashMap::new();
    for (line, row) in rows {
        let err = |column: &str, problem: String| IngestError::Csv { line, column: Some(column.to_string()), problem };
        let [school, tz, policy, date, instructional, day_type, start, end] =
            [0, 1, 2, 3, 4, 5, 6, 7].map(|i| row.get(i).map_or("", String::as_str));
        let mut bad = false;
        for (name, value) in [("school_id", school), ("policy", policy)] {
            if value.is_empty() {
                errors.push(err(name, "empty".into()));
                bad = true;
            }
        }
        if chrono_tz::Tz::from_str(tz).is_err() {
            errors.push(err("timezone", format!("`{tz}` is not an IANA time zone name (such as America/Chicago)")));
            bad = true;
        }
        let date_ok = date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-';
        let date = match NaiveDate::parse_from_str(date, "%Y-%m-%d").ok().filter(|_| date_ok) {
            Some(d) => Some(d),
            None => {
                errors.push(err("date", format!("`{date}` is not a date (YYYY-MM-DD)")));
                None
            }
        };
        let instructional = match instructional {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                errors.push(err("instructional", format!("`{other}` is not true or false")));
                None
            }
        };
        let day_type = match (day_type, instructional) {
            ("", Some(false)) => Some(DayType::Full),
            (t, _) => match t.parse::<DayType>() {
                Ok(t) => Some(t),
                Err(e) => {
                    errors.push(err("day_type", e.to_string()));
                    None
                }
            },
        };
        let time = |column: &str, v: &str, errors: &mut Vec<IngestError>| -> Option<LocalTime> {
            if v.is_empty() && instructional == Some(false) {
                return Some(LocalTime::default());
            }
            if v.is_empty() {
                errors.push(err(column, "empty; an instructional day has a start and an end".into()));
                return None;
            }
            v.parse().map_err(|p| errors.push(err(column, p))).ok()
        };
        let (start, end) = (time("start", start, &mut errors), time("end", end, &mut errors));
        let (Some(date), Some(instructional), Some(day_type), Some(start), Some(end), false) =
            (date, instructional, day_type, start, end, bad)
        else {
            continue;
        };
        if instructional && end <= start {
            errors.push(err("end", format!("{end} is not after start {start}")));
            continue;
        }
        let day = CalendarDay { date, instructional, day_type, start, end };
        match schools.get_mut(school) {
            None => {
                schools.insert(school.to_string(), (calendars.len(), line, HashMap::from([(date, line)])));
                calendars.push(SchoolCalendar {
                    school_id: school.to_string(),
                    timezone: tz.to_string(),
                    policy: policy.to_string(),
                    days: vec![day],
                });
            }
            Some((at, first, dates)) => {
                let cal = &mut calendars[*at];
                if cal.timezone != tz {
                    errors.push(err(
                        "timezone",
                        format!("`{tz}` differs from the school's `{}` (line {first}); a school has one zone", cal.timezone),
                    ));
                    continue;
                }
                if cal.policy != policy {
                    errors.push(err(
                        "policy",
                        format!("`{policy}` differs from the school's `{}` (line {first}); a school has one policy", cal.policy),
                    ));
                    continue;
                }
                if let Some(before) = dates.get(&date) {
                    errors.push(err("date", format!("{date} is listed again for {school} (first on line {before})")));
                    continue;
                }
                dates.insert(date, line);
                cal.days.push(day);
            }
        }
    }
    for c in &mut calendars {
        c.days.sort_by_key(|d| d.date);
    }
    Ok(Calendars { calendars, errors: by_line(errors) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "school_id,timezone,policy,date,instructional,day_type,start,end\n";

    #[test]
    fn reads_each_school() {
        let text = format!(
            "{HEAD}lms,America/Chicago,mmsd,2025-01-07,true,EARLY_RELEASE,08:00,12:30\n\
             lms,America/Chicago,mmsd,2025-01-06,true,FULL,08:00,15:00\n\
             hs,America/Denver,nmped,2025-01-06,true,ASYNC,09:00,15:30\n\
             lms,America/Chicago,mmsd,2025-01-20,false,,,\n"
        );
        let c = read(text.as_bytes()).unwrap();
        assert_eq!(c.errors, vec![]);
        assert_eq!(c.calendars.len(), 2);
        let lms = &c.calendars[0];
        assert_eq!((lms.school_id.as_str(), lms.timezone.as_str(), lms.policy.as_str()), ("lms", "America/Chicago", "mmsd"));
        let dates: Vec<String> = lms.days.iter().map(|d| d.date.to_string()).collect();
        assert_eq!(dates, ["2025-01-06", "2025-01-07", "2025-01-20"]);
        assert_eq!(lms.days[1].day_type, DayType::EarlyRelease);
        assert_eq!(lms.days[1].minutes(), 270);
        assert!(!lms.days[2].instructional);
        assert_eq!(lms.days[2].day_type, DayType::Full);
        assert_eq!(c.calendars[1].days[0].day_type, DayType::Async);
    }

    #[test]
    fn names_each_bad_row() {
        let text = format!(
            "{HEAD}lms,America/Chicago,mmsd,2025-01-06,true,FULL,08:00,15:00\n\
             lms,America/Chicgo,mmsd,2025-01-07,true,FULL,08:00,15:00\n\
             lms,America/Denver,mmsd,2025-01-08,true,FULL,08:00,15:00\n\
             lms,America/Chicago,cms,2025-01-09,true,FULL,08:00,15:00\n\
             lms,America/Chicago,mmsd,2025-01-06,true,FULL,08:00,15:00\n\
             lms,America/Chicago,mmsd,2025-1-10,yes,HALF,8:00,15:00\n\
             lms,America/Chicago,mmsd,2025-01-13,true,FULL,,\n\
             lms,America/Chicago,mmsd,2025-01-14,true,FULL,15:00,08:00\n\
             ,America/Chicago,,2025-01-15,false,,,\n\
             lms,America/Chicago,mmsd\n"
        );
        let c = read(text.as_bytes()).unwrap();
        let got: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "line 3, column `timezone`: `America/Chicgo` is not an IANA time zone name (such as America/Chicago)",
                "line 4, column `timezone`: `America/Denver` differs from the school's `America/Chicago` (line 2); a school has one zone",
                "line 5, column `policy`: `cms` differs from the school's `mmsd` (line 2); a school has one policy",
                "line 6, column `date`: 2025-01-06 is listed again for lms (first on line 2)",
                "line 7, column `date`: `2025-1-10` is not a date (YYYY-MM-DD)",
                "line 7, column `instructional`: `yes` is not true or false",
                "line 7, column `day_type`: unknown DayType value `HALF` (expected one of FULL, EARLY_RELEASE, ASYNC)",
                "line 7, column `start`: `8:00` is not a time of day in HH:MM form (00:00 to 24:00)",
                "line 8, column `start`: empty; an instructional day has a start and an end",
                "line 8, column `end`: empty; an instructional day has a start and an end",
                "line 9, column `end`: 08:00 is not after start 15:00",
                "line 10, column `school_id`: empty",
                "line 10, column `policy`: empty",
                "line 11: 3 fields; the header has 8",
            ]
        );
        assert_eq!(c.calendars.len(), 1);
        assert_eq!(c.calendars[0].days.len(), 1, "only the good row");
    }

    #[test]
    fn refuses_another_header() {
        let e = read(b"school_id,timezone,policy,date,day_type\n").unwrap_err().to_string();
        assert!(e.starts_with("line 1: the header is `school_id,timezone,policy,date,day_type`; expected exactly"), "{e}");
        assert!(read(b"").is_err());
        assert_eq!(read(HEAD.as_bytes()).unwrap().calendars, vec![]);
    }
}
