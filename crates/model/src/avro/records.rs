//! Each record type's `AvroRecord` impl: its schema file, and its fields
//! mapped one by one onto a `Value` and back. The mappings are written out
//! rather than derived through serde so that each field gets exactly its
//! schema's type (see the module doc); the nested records (meetings,
//! enrollments, mode spans, calendar days) are mapped here too.

use std::sync::OnceLock;

use apache_avro::types::Value;

use super::direct::{activity_event_direct, activity_event_encode, determination_decode, determination_direct};
use super::generic::CompiledSchema;
use super::value::{
    array_of, as_bool, as_bytes, as_date, as_enum, as_grade, as_int, as_local_time, as_long, as_string, as_string_map,
    as_timestamp, nested, optional, v_array, v_date, v_enum, v_opt, v_record, v_str, v_strings, v_timestamp, Fields,
};
use super::{AvroError, AvroRecord};
use crate::types::*;

macro_rules! avro_record {
    (
        $t:ident, $file:literal, $to:ident, $from:ident
        $(, direct: $direct:expr)?
        $(, direct_encoder: $encode:expr)?
        $(, earlier: [$($old:literal),*])?
    ) => {
        impl AvroRecord for $t {
            const SCHEMA_FILE: &'static str = $file;

            fn compiled() -> &'static CompiledSchema {
                static COMPILED: OnceLock<CompiledSchema> = OnceLock::new();
                COMPILED.get_or_init(|| {
                    CompiledSchema::parse(
                        stringify!($t),
                        $file,
                        include_str!(concat!("../../../../schemas/", $file)),
                    )
                })
            }

            fn to_avro_value(&self) -> Value {
                $to(self)
            }

            fn from_avro_value(v: Value) -> Result<Self, AvroError> {
                $from(v)
            }

            $(fn decode_direct(datum: &[u8]) -> Option<Self> {
                $direct(datum)
            })?

            $(fn encode_direct(&self, out: &mut Vec<u8>) -> bool {
                $encode(self, out);
                true
            })?

            $(fn earlier() -> &'static [CompiledSchema] {
                static EARLIER: OnceLock<Vec<CompiledSchema>> = OnceLock::new();
                EARLIER.get_or_init(|| {
                    vec![$(CompiledSchema::parse(
                        stringify!($t),
                        concat!("history/", $old),
                        include_str!(concat!("../../../../schemas/history/", $old)),
                    )),*]
                })
            })?
        }
    };
}

avro_record!(
    ActivityEvent,
    "activity_event.avsc",
    activity_event_to,
    activity_event_from,
    direct: activity_event_direct,
    direct_encoder: activity_event_encode,
    earlier: ["activity_event.1.avsc"]
);
avro_record!(StudentRecord, "student_record.avsc", student_record_to, student_record_from);
avro_record!(SchoolCalendar, "school_calendar.avsc", school_calendar_to, school_calendar_from);
avro_record!(AbsenceReport, "absence_report.avsc", absence_report_to, absence_report_from);
avro_record!(
    Determination,
    "determination.avsc",
    determination_to,
    determination_from,
    direct: determination_decode,
    direct_encoder: determination_direct,
    earlier: ["determination.1.avsc"]
);
avro_record!(OutreachTrigger, "outreach_trigger.avsc", outreach_trigger_to, outreach_trigger_from);
avro_record!(DeadLetter, "dead_letter.avsc", dead_letter_to, dead_letter_from);
avro_record!(IdentityRecord, "identity_record.avsc", identity_record_to, identity_record_from);

fn activity_event_to(e: &ActivityEvent) -> Value {
    v_record([
        ("event_id", v_str(&e.event_id)),
        ("source", v_str(&e.source)),
        ("student_id", v_str(&e.student_id)),
        ("school_id", v_str(&e.school_id)),
        ("section_id", v_opt(e.section_id.as_deref(), v_str)),
        ("staff_id", v_opt(e.staff_id.as_deref(), v_str)),
        ("kind", v_enum(e.kind)),
        ("direction", v_opt(e.direction, v_enum)),
        ("occurred_at", v_timestamp(&e.occurred_at)),
        ("assigned_date", v_opt(e.assigned_date, v_date)),
        ("live_session_id", v_opt(e.live_session_id.as_deref(), v_str)),
        ("duration_seconds", v_opt(e.duration_seconds, Value::Long)),
        ("attributes", Value::Map(e.attributes.iter().map(|(k, v)| (k.clone(), v_str(v))).collect())),
        ("received_at", v_opt(e.received_at.as_ref(), v_timestamp)),
    ])
}

fn activity_event_from(v: Value) -> Result<ActivityEvent, AvroError> {
    let mut f = Fields::of("ActivityEvent", v)?;
    let e = ActivityEvent {
        event_id: f.get("event_id", as_string)?,
        source: f.get("source", as_string)?,
        student_id: f.get("student_id", as_string)?,
        school_id: f.get("school_id", as_string)?,
        section_id: f.get("section_id", optional(as_string))?,
        staff_id: f.get("staff_id", optional(as_string))?,
        kind: f.get("kind", as_enum)?,
        direction: f.get("direction", optional(as_enum))?,
        occurred_at: f.get("occurred_at", as_timestamp)?,
        assigned_date: f.get("assigned_date", optional(as_date))?,
        live_session_id: f.get("live_session_id", optional(as_string))?,
        duration_seconds: f.get("duration_seconds", optional(as_long))?,
        attributes: f.get("attributes", as_string_map)?,
        received_at: f.get("received_at", optional(as_timestamp))?,
    };
    f.finish()?;
    Ok(e)
}

fn meeting_to(m: &Meeting) -> Value {
    v_record([
        ("weekdays", v_array(&m.weekdays, |d| v_enum(*d))),
        ("start", v_str(&m.start.to_string())),
        ("end", v_str(&m.end.to_string())),
    ])
}

fn meeting_from(v: Value) -> Result<Meeting, AvroError> {
    let mut f = Fields::of("Meeting", v)?;
    let m = Meeting {
        weekdays: f.get("weekdays", array_of(as_enum))?,
        start: f.get("start", as_local_time)?,
        end: f.get("end", as_local_time)?,
    };
    f.finish()?;
    Ok(m)
}

fn enrollment_to(e: &Enrollment) -> Value {
    v_record([
        ("section_id", v_str(&e.section_id)),
        ("staff_id", v_str(&e.staff_id)),
        ("course_type", v_enum(e.course_type)),
        ("specials", Value::Boolean(e.specials)),
        ("dual_enrollment", Value::Boolean(e.dual_enrollment)),
        ("meetings", v_array(&e.meetings, meeting_to)),
    ])
}

fn enrollment_from(v: Value) -> Result<Enrollment, AvroError> {
    let mut f = Fields::of("Enrollment", v)?;
    let e = Enrollment {
        section_id: f.get("section_id", as_string)?,
        staff_id: f.get("staff_id", as_string)?,
        course_type: f.get("course_type", as_enum)?,
        specials: f.get("specials", as_bool)?,
        dual_enrollment: f.get("dual_enrollment", as_bool)?,
        meetings: f.get("meetings", array_of(nested(meeting_from)))?,
    };
    f.finish()?;
    Ok(e)
}

fn mode_span_to(m: &ModeSpan) -> Value {
    v_record([
        ("from", v_date(m.from)),
        ("to", v_date(m.to)),
        ("weekdays", v_array(&m.weekdays, |d| v_enum(*d))),
        ("mode", v_enum(m.mode)),
    ])
}

fn mode_span_from(v: Value) -> Result<ModeSpan, AvroError> {
    let mut f = Fields::of("ModeSpan", v)?;
    let m = ModeSpan {
        from: f.get("from", as_date)?,
        to: f.get("to", as_date)?,
        weekdays: f.get("weekdays", array_of(as_enum))?,
        mode: f.get("mode", as_enum)?,
    };
    f.finish()?;
    Ok(m)
}

fn student_record_to(s: &StudentRecord) -> Value {
    v_record([
        ("student_id", v_str(&s.student_id)),
        ("school_id", v_str(&s.school_id)),
        // A string on the wire: see the schema's doc for why it is not an enum.
        ("grade_level", v_str(s.grade_level.as_str())),
        ("homeroom_section_id", v_opt(s.homeroom_section_id.as_deref(), v_str)),
        ("homeroom_staff_id", v_opt(s.homeroom_staff_id.as_deref(), v_str)),
        ("groups", v_strings(&s.groups)),
        ("enrollments", v_array(&s.enrollments, enrollment_to)),
        ("modes", v_array(&s.modes, mode_span_to)),
    ])
}

fn student_record_from(v: Value) -> Result<StudentRecord, AvroError> {
    let mut f = Fields::of("StudentRecord", v)?;
    let s = StudentRecord {
        student_id: f.get("student_id", as_string)?,
        school_id: f.get("school_id", as_string)?,
        grade_level: f.get("grade_level", as_grade)?,
        homeroom_section_id: f.get("homeroom_section_id", optional(as_string))?,
        homeroom_staff_id: f.get("homeroom_staff_id", optional(as_string))?,
        groups: f.get("groups", array_of(as_string))?,
        enrollments: f.get("enrollments", array_of(nested(enrollment_from)))?,
        modes: f.get("modes", array_of(nested(mode_span_from)))?,
    };
    f.finish()?;
    Ok(s)
}

fn calendar_day_to(d: &CalendarDay) -> Value {
    v_record([
        ("date", v_date(d.date)),
        ("instructional", Value::Boolean(d.instructional)),
        ("day_type", v_enum(d.day_type)),
        ("start", v_str(&d.start.to_string())),
        ("end", v_str(&d.end.to_string())),
    ])
}

fn calendar_day_from(v: Value) -> Result<CalendarDay, AvroError> {
    let mut f = Fields::of("CalendarDay", v)?;
    let d = CalendarDay {
        date: f.get("date", as_date)?,
        instructional: f.get("instructional", as_bool)?,
        day_type: f.get("day_type", as_enum)?,
        start: f.get("start", as_local_time)?,
        end: f.get("end", as_local_time)?,
    };
    f.finish()?;
    Ok(d)
}

fn school_calendar_to(c: &SchoolCalendar) -> Value {
    v_record([
        ("school_id", v_str(&c.school_id)),
        ("timezone", v_str(&c.timezone)),
        ("policy", v_str(&c.policy)),
        ("days", v_array(&c.days, calendar_day_to)),
    ])
}

fn school_calendar_from(v: Value) -> Result<SchoolCalendar, AvroError> {
    let mut f = Fields::of("SchoolCalendar", v)?;
    let c = SchoolCalendar {
        school_id: f.get("school_id", as_string)?,
        timezone: f.get("timezone", as_string)?,
        policy: f.get("policy", as_string)?,
        days: f.get("days", array_of(nested(calendar_day_from)))?,
    };
    f.finish()?;
    Ok(c)
}

fn absence_report_to(r: &AbsenceReport) -> Value {
    v_record([
        ("report_id", v_str(&r.report_id)),
        ("student_id", v_str(&r.student_id)),
        ("date", v_date(r.date)),
        ("reported_at", v_timestamp(&r.reported_at)),
        ("reason", v_enum(r.reason)),
        ("reporter", v_enum(r.reporter)),
    ])
}

fn absence_report_from(v: Value) -> Result<AbsenceReport, AvroError> {
    let mut f = Fields::of("AbsenceReport", v)?;
    let r = AbsenceReport {
        report_id: f.get("report_id", as_string)?,
        student_id: f.get("student_id", as_string)?,
        date: f.get("date", as_date)?,
        reported_at: f.get("reported_at", as_timestamp)?,
        reason: f.get("reason", as_enum)?,
        reporter: f.get("reporter", as_enum)?,
    };
    f.finish()?;
    Ok(r)
}

fn determination_to(d: &Determination) -> Value {
    v_record([
        ("determination_id", v_str(&d.determination_id)),
        ("student_id", v_str(&d.student_id)),
        ("school_id", v_str(&d.school_id)),
        ("scope", v_enum(d.scope)),
        ("date", v_date(d.date)),
        ("section_id", v_opt(d.section_id.as_deref(), v_str)),
        ("policy", v_str(&d.policy)),
        ("status", v_enum(d.status)),
        ("code", v_str(&d.code)),
        ("attendance_type", v_opt(d.attendance_type, v_enum)),
        ("minutes", v_opt(d.minutes, Value::Long)),
        ("contacts", v_opt(d.contacts, Value::Int)),
        ("category", v_opt(d.category.as_deref(), v_str)),
        ("rule", v_str(&d.rule)),
        ("evidence", v_strings(&d.evidence)),
        ("version", Value::Int(d.version)),
        ("finality", v_enum(d.finality)),
        ("decided_at", v_timestamp(&d.decided_at)),
        ("evidence_detail", v_array(&d.evidence_detail, evidence_detail_to)),
        ("looked_for", v_strings(&d.looked_for)),
        ("seen", v_array(&d.seen, seen_activity_to)),
    ])
}

fn evidence_detail_to(e: &EvidenceDetail) -> Value {
    v_record([
        ("id", v_str(&e.id)),
        ("kind", v_str(&e.kind)),
        ("occurred_at", v_opt(e.occurred_at.as_ref(), v_timestamp)),
        ("local_time", v_opt(e.local_time.as_deref(), v_str)),
        ("source", v_opt(e.source.as_deref(), v_str)),
        ("section_id", v_opt(e.section_id.as_deref(), v_str)),
        ("staff_id", v_opt(e.staff_id.as_deref(), v_str)),
        ("detail", v_opt(e.detail.as_deref(), v_str)),
    ])
}

fn evidence_detail_from(v: Value) -> Result<EvidenceDetail, AvroError> {
    let mut f = Fields::of("EvidenceDetail", v)?;
    let e = EvidenceDetail {
        id: f.get("id", as_string)?,
        kind: f.get("kind", as_string)?,
        occurred_at: f.get("occurred_at", optional(as_timestamp))?,
        local_time: f.get("local_time", optional(as_string))?,
        source: f.get("source", optional(as_string))?,
        section_id: f.get("section_id", optional(as_string))?,
        staff_id: f.get("staff_id", optional(as_string))?,
        detail: f.get("detail", optional(as_string))?,
    };
    f.finish()?;
    Ok(e)
}

fn seen_activity_to(s: &SeenActivity) -> Value {
    v_record([
        ("kind", v_str(&s.kind)),
        ("section_id", v_opt(s.section_id.as_deref(), v_str)),
        ("count", Value::Int(s.count)),
        ("first_local_time", v_str(&s.first_local_time)),
        ("why_not", v_str(&s.why_not)),
    ])
}

fn seen_activity_from(v: Value) -> Result<SeenActivity, AvroError> {
    let mut f = Fields::of("SeenActivity", v)?;
    let s = SeenActivity {
        kind: f.get("kind", as_string)?,
        section_id: f.get("section_id", optional(as_string))?,
        count: f.get("count", as_int)?,
        first_local_time: f.get("first_local_time", as_string)?,
        why_not: f.get("why_not", as_string)?,
    };
    f.finish()?;
    Ok(s)
}

fn determination_from(v: Value) -> Result<Determination, AvroError> {
    let mut f = Fields::of("Determination", v)?;
    let d = Determination {
        determination_id: f.get("determination_id", as_string)?,
        student_id: f.get("student_id", as_string)?,
        school_id: f.get("school_id", as_string)?,
        scope: f.get("scope", as_enum)?,
        date: f.get("date", as_date)?,
        section_id: f.get("section_id", optional(as_string))?,
        policy: f.get("policy", as_string)?,
        status: f.get("status", as_enum)?,
        code: f.get("code", as_string)?,
        attendance_type: f.get("attendance_type", optional(as_enum))?,
        minutes: f.get("minutes", optional(as_long))?,
        contacts: f.get("contacts", optional(as_int))?,
        category: f.get("category", optional(as_string))?,
        rule: f.get("rule", as_string)?,
        evidence: f.get("evidence", array_of(as_string))?,
        version: f.get("version", as_int)?,
        finality: f.get("finality", as_enum)?,
        decided_at: f.get("decided_at", as_timestamp)?,
        evidence_detail: f.get("evidence_detail", array_of(nested(evidence_detail_from)))?,
        looked_for: f.get("looked_for", array_of(as_string))?,
        seen: f.get("seen", array_of(nested(seen_activity_from)))?,
    };
    f.finish()?;
    Ok(d)
}

fn outreach_trigger_to(t: &OutreachTrigger) -> Value {
    v_record([
        ("trigger_id", v_str(&t.trigger_id)),
        ("student_id", v_str(&t.student_id)),
        ("school_id", v_str(&t.school_id)),
        ("kind", v_enum(t.kind)),
        ("recipient_role", v_enum(t.recipient_role)),
        ("staff_id", v_opt(t.staff_id.as_deref(), v_str)),
        ("section_id", v_opt(t.section_id.as_deref(), v_str)),
        ("window_start", v_date(t.window_start)),
        ("window_end", v_date(t.window_end)),
        ("reason", v_str(&t.reason)),
        ("evidence", v_strings(&t.evidence)),
        ("policy", v_str(&t.policy)),
        ("created_at", v_timestamp(&t.created_at)),
    ])
}

fn outreach_trigger_from(v: Value) -> Result<OutreachTrigger, AvroError> {
    let mut f = Fields::of("OutreachTrigger", v)?;
    let t = OutreachTrigger {
        trigger_id: f.get("trigger_id", as_string)?,
        student_id: f.get("student_id", as_string)?,
        school_id: f.get("school_id", as_string)?,
        kind: f.get("kind", as_enum)?,
        recipient_role: f.get("recipient_role", as_enum)?,
        staff_id: f.get("staff_id", optional(as_string))?,
        section_id: f.get("section_id", optional(as_string))?,
        window_start: f.get("window_start", as_date)?,
        window_end: f.get("window_end", as_date)?,
        reason: f.get("reason", as_string)?,
        evidence: f.get("evidence", array_of(as_string))?,
        policy: f.get("policy", as_string)?,
        created_at: f.get("created_at", as_timestamp)?,
    };
    f.finish()?;
    Ok(t)
}

fn identity_record_to(r: &IdentityRecord) -> Value {
    v_record([
        ("source", v_str(&r.source)),
        ("type", v_enum(r.kind)),
        ("external_id", v_str(&r.external_id)),
        ("id", v_str(&r.id)),
        ("school_id", v_opt(r.school_id.as_deref(), v_str)),
    ])
}

fn identity_record_from(v: Value) -> Result<IdentityRecord, AvroError> {
    let mut f = Fields::of("IdentityRecord", v)?;
    let r = IdentityRecord {
        source: f.get("source", as_string)?,
        kind: f.get("type", as_enum)?,
        external_id: f.get("external_id", as_string)?,
        id: f.get("id", as_string)?,
        school_id: f.get("school_id", optional(as_string))?,
    };
    f.finish()?;
    Ok(r)
}

fn dead_letter_to(d: &DeadLetter) -> Value {
    v_record([
        ("topic", v_str(&d.topic)),
        ("partition", v_opt(d.partition, Value::Int)),
        ("offset", v_opt(d.offset, Value::Long)),
        ("key", v_opt(d.key.as_deref(), v_str)),
        ("value", Value::Bytes(d.value.clone())),
        ("error_kind", v_str(&d.error_kind)),
        ("message", v_str(&d.message)),
        ("failed_at", v_timestamp(&d.failed_at)),
    ])
}

fn dead_letter_from(v: Value) -> Result<DeadLetter, AvroError> {
    let mut f = Fields::of("DeadLetter", v)?;
    let d = DeadLetter {
        topic: f.get("topic", as_string)?,
        partition: f.get("partition", optional(as_int))?,
        offset: f.get("offset", optional(as_long))?,
        key: f.get("key", optional(as_string))?,
        value: f.get("value", as_bytes)?,
        error_kind: f.get("error_kind", as_string)?,
        message: f.get("message", as_string)?,
        failed_at: f.get("failed_at", as_timestamp)?,
    };
    f.finish()?;
    Ok(d)
}
