use std::collections::{HashMap, HashSet};

use chrono::{Duration, NaiveDate};
use chrono_tz::Tz;
use rollcall_model::{ActivityKind, DayType, Weekday};

use super::*;

fn world() -> World {
    generate(&SimConfig::default())
}

fn tz_of(w: &World) -> HashMap<&str, Tz> {
    w.calendars.iter().map(|c| (c.school_id.as_str(), c.timezone.parse::<Tz>().unwrap())).collect()
}

#[test]
fn same_seed_gives_the_same_world() {
    let a = serde_json::to_string(&world()).unwrap();
    let b = serde_json::to_string(&world()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn different_seeds_give_different_worlds() {
    let a = world();
    let b = generate(&SimConfig { seed: 43, ..SimConfig::default() });
    assert_eq!(a.calendars, b.calendars, "calendars do not depend on the seed");
    assert_ne!(a.roster, b.roster);
    assert_ne!(a.events, b.events);
}

#[test]
fn every_event_names_a_rostered_student_at_a_school_with_a_calendar() {
    let w = world();
    let schools: HashSet<&str> = w.calendars.iter().map(|c| c.school_id.as_str()).collect();
    assert_eq!(schools.len(), 5);
    let roster: HashMap<&str, &StudentRecord> = w.roster.iter().map(|s| (s.student_id.as_str(), s)).collect();
    assert_eq!(roster.len(), w.roster.len(), "student ids are unique");
    for s in &w.roster {
        assert!(schools.contains(s.school_id.as_str()));
    }
    for e in &w.events {
        let s = roster.get(e.event.student_id.as_str()).unwrap_or_else(|| panic!("{} not rostered", e.event.student_id));
        assert_eq!(s.school_id, e.event.school_id);
        if let Some(sec) = &e.event.section_id {
            assert!(s.enrollment(sec).is_some(), "{} not enrolled in {sec}", s.student_id);
        }
    }
    for r in &w.absence_reports {
        assert!(roster.contains_key(r.student_id.as_str()));
    }
}

#[test]
fn events_are_sorted_by_arrival_and_arrive_after_they_occur() {
    let w = world();
    assert!(!w.events.is_empty());
    for pair in w.events.windows(2) {
        assert!(pair[0].arrives_at <= pair[1].arrives_at);
    }
    for e in &w.events {
        assert!(e.arrives_at >= e.event.occurred_at, "{}", e.event.event_id);
        assert!(e.arrives_at <= w.end, "{} arrives after the end", e.event.event_id);
    }
}

#[test]
fn duplicates_repeat_an_event_exactly_at_about_the_configured_rate() {
    let cfg = SimConfig { students: 1000, ..SimConfig::default() };
    let w = generate(&cfg);
    let mut first: HashMap<&str, &ScheduledEvent> = HashMap::new();
    let mut dups = 0usize;
    for e in &w.events {
        match first.get(e.event.event_id.as_str()) {
            Some(f) => {
                dups += 1;
                assert_eq!(f.event, e.event, "a duplicate is the same event");
            }
            None => {
                first.insert(&e.event.event_id, e);
            }
        }
    }
    let rate = dups as f64 / first.len() as f64;
    assert!((0.007..0.013).contains(&rate), "duplicate rate {rate}");
}

#[test]
fn some_events_arrive_after_their_day_is_over() {
    let cfg = SimConfig { students: 1000, ..SimConfig::default() };
    let w = generate(&cfg);
    let tz = tz_of(&w);
    let late = w
        .events
        .iter()
        .filter(|e| {
            let z = tz[e.event.school_id.as_str()];
            e.arrives_at.with_timezone(&z).date_naive() > e.event.occurred_at.with_timezone(&z).date_naive() + Duration::days(1)
        })
        .count();
    let rate = late as f64 / w.events.len() as f64;
    assert!((0.003..0.007).contains(&rate), "late rate {rate}");
}

#[test]
fn timestamps_fall_on_local_dates_in_or_just_after_the_span() {
    let cfg = SimConfig::default();
    let w = generate(&cfg);
    let tz = tz_of(&w);
    let first = cfg.start;
    let last = cfg.start + Duration::days(cfg.days as i64 - 1);
    for e in &w.events {
        let z = tz[e.event.school_id.as_str()];
        let d = e.event.occurred_at.with_timezone(&z).date_naive();
        assert!(first <= d && d <= last + Duration::days(1), "{} occurs on {d}", e.event.event_id);
        let a = e.arrives_at.with_timezone(&z).date_naive();
        assert!(a <= last + Duration::days(4), "{} arrives on {a}", e.event.event_id);
        if let Some(assigned) = e.event.assigned_date {
            assert!(assigned <= d && d <= assigned + Duration::days(7));
        }
    }
    let school: HashMap<&str, &str> = w.roster.iter().map(|s| (s.student_id.as_str(), s.school_id.as_str())).collect();
    for r in &w.absence_reports {
        let z = tz[school[r.student_id.as_str()]];
        let d = r.reported_at.with_timezone(&z).date_naive();
        assert!(d <= r.date && r.date <= last, "{} reported on {d} for {}", r.report_id, r.date);
    }
}

#[test]
fn events_have_the_fields_their_kind_calls_for() {
    let w = world();
    let tz = tz_of(&w);
    let mut kinds = HashSet::new();
    for e in &w.events {
        let ev = &e.event;
        kinds.insert(ev.kind);
        assert!(ev.event_id.starts_with("ev-"));
        assert!(["canvas", "google_classroom", "zoom", "meet", "teacher_log", "door"].contains(&ev.source.as_str()));
        match ev.kind {
            ActivityKind::LiveJoin | ActivityKind::LiveLeave => {
                let sec = ev.section_id.as_deref().unwrap();
                let date = ev.occurred_at.with_timezone(&tz[ev.school_id.as_str()]).date_naive();
                assert_eq!(ev.live_session_id.as_deref(), Some(format!("{sec}-{date}").as_str()));
            }
            ActivityKind::Submission | ActivityKind::OfflineWorkReturned => assert!(ev.assigned_date.is_some()),
            ActivityKind::Message => assert!(ev.direction.is_some() && ev.staff_id.is_some()),
            ActivityKind::TwoWayContact => assert!(ev.staff_id.is_some()),
            ActivityKind::CheckIn | ActivityKind::CheckOut => assert_eq!(ev.source, "door"),
            _ => {}
        }
    }
    // A default district exercises every kind.
    for k in [
        ActivityKind::Login,
        ActivityKind::Logout,
        ActivityKind::Submission,
        ActivityKind::Message,
        ActivityKind::LiveJoin,
        ActivityKind::LiveLeave,
        ActivityKind::ContentAccess,
        ActivityKind::RecordingView,
        ActivityKind::TwoWayContact,
        ActivityKind::CheckIn,
        ActivityKind::CheckOut,
        ActivityKind::OfflineWorkReturned,
    ] {
        assert!(kinds.contains(&k), "no {k} event");
    }
}

#[test]
fn calendars_follow_the_district_rules() {
    let w = generate(&SimConfig { days: 14, ..SimConfig::default() });
    for c in &w.calendars {
        assert_eq!(c.days.len(), 10, "{}: ten weekdays", c.school_id);
        let holidays: Vec<_> = c.days.iter().filter(|d| !d.instructional).map(|d| d.date).collect();
        assert_eq!(holidays, [NaiveDate::from_ymd_opt(2020, 10, 12).unwrap()]);
        for d in c.days.iter().filter(|d| d.instructional) {
            let async_day = c.school_id == "mmsd-lincoln" && Weekday::of(d.date) == Weekday::Wed;
            assert_eq!(d.day_type == DayType::Async, async_day, "{} {}", c.school_id, d.date);
            assert_eq!((d.start.to_string().as_str(), d.end.to_string().as_str()), ("08:00", "15:00"));
        }
    }
    assert!(generate(&SimConfig::default()).calendars.iter().all(|c| c.days.iter().all(|d| d.instructional)));
}

#[test]
fn the_roster_looks_like_a_school() {
    let w = generate(&SimConfig { students: 2000, ..SimConfig::default() });
    let mut per_section: HashMap<(&str, &str), usize> = HashMap::new();
    for s in &w.roster {
        assert!(!s.enrollments.is_empty());
        assert_eq!(s.homeroom_section_id.as_deref(), Some(s.enrollments[0].section_id.as_str()));
        for e in &s.enrollments {
            *per_section.entry((&s.school_id, &e.section_id)).or_default() += 1;
        }
        let mut teachers: Vec<&str> = s.enrollments.iter().filter(|e| !e.specials).map(|e| e.staff_id.as_str()).collect();
        let n = teachers.len();
        teachers.dedup();
        assert_eq!(teachers.len(), n, "{}: distinct teachers", s.student_id);
    }
    let avg = per_section.values().sum::<usize>() as f64 / per_section.len() as f64;
    assert!(avg > 10.0, "sections average {avg} students");
    let grouped = w.roster.iter().filter(|s| !s.groups.is_empty()).count() as f64 / w.roster.len() as f64;
    assert!((0.15..0.25).contains(&grouped), "{grouped} in priority groups");
    let has = |school: &str, f: &dyn Fn(&StudentRecord) -> bool| w.roster.iter().any(|s| s.school_id == school && f(s));
    assert!(has("ms-pine", &|s| s.enrollments.iter().any(|e| e.dual_enrollment)));
    assert!(has("cms-oak", &|s| s.enrollments.iter().any(|e| e.course_type == rollcall_model::CourseType::AsyncOnly)));
    for school in ["ms-pine", "cms-oak", "aps-hill"] {
        assert!(has(school, &|s| s.modes.iter().any(|m| m.mode == rollcall_model::Mode::InPerson)), "{school}");
    }
    assert!(has("ms-pine", &|s| s.modes.iter().any(|m| m.mode == rollcall_model::Mode::LearningPackets)));
    assert!(!has("mmsd-lincoln", &|s| !s.modes.is_empty()));
}

#[test]
fn scenario_json_has_the_scenario_shape() {
    let w = generate(&SimConfig { students: 20, ..SimConfig::default() });
    let v = w.to_scenario_json("demo", "mixed");
    assert_eq!(v["name"], "demo");
    assert_eq!(v["now"], serde_json::to_value(w.end).unwrap());
    assert_eq!(v["expect"]["no_other_outreach"], false);
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), w.events.len());
    for (j, e) in events.iter().zip(&w.events) {
        let mut obj = j.as_object().unwrap().clone();
        let arrives = obj.remove("arrives_at").unwrap();
        assert_eq!(arrives, serde_json::to_value(e.arrives_at).unwrap());
        let back: ActivityEvent = serde_json::from_value(Value::Object(obj)).unwrap();
        assert_eq!(back, e.event);
    }
    let cals: Vec<SchoolCalendar> = serde_json::from_value(v["calendars"].clone()).unwrap();
    assert_eq!(cals, w.calendars);
    let roster: Vec<StudentRecord> = serde_json::from_value(v["roster"].clone()).unwrap();
    assert_eq!(roster, w.roster);
}

#[test]
fn the_end_is_the_tuesday_after_the_last_week() {
    let w = world();
    assert_eq!(w.end.to_rfc3339(), "2020-10-13T12:00:00+00:00");
    let w = generate(&SimConfig { students: 5, days: 10, ..SimConfig::default() });
    assert_eq!(w.end.to_rfc3339(), "2020-10-20T12:00:00+00:00");
}

/// Prints the default district's counts (`cargo test -p rollcall-sim -- --nocapture default_counts`).
#[test]
fn default_counts() {
    let w = world();
    let mut by_kind: HashMap<ActivityKind, usize> = HashMap::new();
    for e in &w.events {
        *by_kind.entry(e.event.kind).or_default() += 1;
    }
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort();
    let student_days =
        w.calendars.iter().map(|c| c.days.iter().filter(|d| d.instructional).count()).max().unwrap() * w.roster.len();
    println!(
        "students {}, calendars {}, absence reports {}, events {} ({:.1} per instructional student-day), end {}",
        w.roster.len(),
        w.calendars.len(),
        w.absence_reports.len(),
        w.events.len(),
        w.events.len() as f64 / student_days as f64,
        w.end
    );
    println!("{kinds:?}");
    assert!(w.events.len() as f64 / student_days as f64 > 12.0);
}
