//! The gateway's fast path for Caliper: the envelope read once by
//! [`super::scan::Reader`], each event into a typed struct whose strings
//! borrow from the body and mapped as soon as it is read, for the requests
//! that make up nearly all traffic (logins and logouts, submissions,
//! content access, a learner's messages, entities and ignored events).
//!
//! It decides nothing of its own. Anything it is not sure of (any error,
//! any event it does not map, a repeated member name, a Caliper 1.0 marker,
//! a MediaEvent, a TimedOut, a staff member's message) makes it give up,
//! and the request is read again by [`super::normalize_value`], which says
//! what is wrong with it and where. What it accepts it maps exactly as
//! `normalize_value` does: the test below holds the two to the same outcome
//! on every fixture and on generated envelopes.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use rollcall_model::avro::ActivityEventRef;
use rollcall_model::{ActivityKind, Direction};

use super::scan::Reader;
use super::{classify_roles, V1P1, V1P2};
use crate::encoded::Encoded;
use crate::{Draft, IdType, IdentityView, Normalizer, Outcome, Role};

/// The members of an event that the mapping reads.
#[derive(Default)]
struct Item<'a> {
    context: Loose<'a>,
    /// `@type` or `@id` is there, whatever its value.
    caliper_1_0_key: bool,
    ty: Loose<'a>,
    id: Loose<'a>,
    action: Loose<'a>,
    event_time: Loose<'a>,
    actor: Entity<'a>,
    object: Entity<'a>,
    group: Entity<'a>,
    ed_app: Entity<'a>,
    session: Entity<'a>,
    membership: Entity<'a>,
}

/// Any value, keeping only a string.
#[derive(Default)]
enum Loose<'a> {
    #[default]
    Null,
    Str(Cow<'a, str>),
    Other,
}

impl<'a> Loose<'a> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A string that is neither missing, null nor empty.
    fn text(&self) -> Option<&str> {
        self.as_str().filter(|s| !s.is_empty())
    }
}

/// `membership.roles`: one role or an array of them.
#[derive(Default)]
enum Roles<'a> {
    /// Missing or null.
    #[default]
    None,
    /// Every role a non-empty string.
    Texts(Vec<Cow<'a, str>>),
    /// Something `normalize_value` refuses.
    Bad,
}

/// A Caliper entity: an IRI string, or an object with an `id` (and a
/// `type`; a membership has `roles`).
#[derive(Default)]
enum Entity<'a> {
    /// Missing or null: `normalize_value` reads both as absent.
    #[default]
    Absent,
    Iri(Cow<'a, str>),
    Object {
        id: Loose<'a>,
        ty: Loose<'a>,
        roles: Roles<'a>,
    },
    /// A number, a boolean or an array.
    Other,
}

impl<'a> Entity<'a> {
    /// The entity's id as `Node::entity_id` reads it; `None` where that is an error.
    fn id(&self) -> Option<&str> {
        match self {
            Entity::Iri(s) => Some(s).filter(|s| !s.is_empty()).map(|s| &**s),
            Entity::Object { id, .. } => id.text(),
            Entity::Absent | Entity::Other => None,
        }
    }

    fn ty(&self) -> Option<&str> {
        match self {
            Entity::Object { ty, .. } => ty.as_str(),
            _ => None,
        }
    }

    fn is_absent(&self) -> bool {
        matches!(self, Entity::Absent)
    }
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| crate::micros(t.with_timezone(&Utc)))
}

/// Whether `normalize_value` would refuse the item as Caliper 1.0.
fn caliper_1_0(item: &Item) -> bool {
    let ctx = item.context.as_str().unwrap_or("");
    ctx.contains("/ctx/caliper/v1/") || ctx.ends_with("/ctx/caliper/v1") || item.caliper_1_0_key
}

/// Why the fast path gave up (the request goes to `normalize_value`).
struct GiveUp;

/// The outcome of a standard Caliper envelope, or `None` when the fast path
/// gives up on it.
pub(super) fn normalize(body: &[u8], ids: &IdentityView, source: &str) -> Option<Outcome> {
    let mut n = Normalizer::new(ids, source);
    read(body, &mut n)?;
    n.finish().ok()
}

/// The envelope's events written straight to Avro, each stamped with
/// `received_at`, or `None` when the fast path gives up on it.
pub(super) fn encode(body: &[u8], ids: &IdentityView, source: &str, received_at: DateTime<Utc>) -> Option<Encoded> {
    let mut e = Encoder { n: Normalizer::new(ids, source), received_at, out: Encoded::default() };
    // An event's Avro is about half its Caliper JSON, or less.
    e.out.bytes.reserve(body.len() / 2);
    read(body, &mut e)?;
    let Outcome { events, waiting, ignored } = e.n.finish().ok()?;
    debug_assert!(events.is_empty(), "the encoder files no owned event");
    e.out.waiting = waiting;
    e.out.ignored = ignored;
    e.out.stamp_waiting(received_at);
    Some(e.out)
}

/// Reads a standard Caliper envelope into `sink`; `None` when the fast path
/// gives up on it. A member named twice is read as its last value, as
/// `serde_json::Value` reads it (but `data` twice gives up). Every value is
/// read and checked, none skipped unread.
fn read<S: Sink>(body: &[u8], sink: &mut S) -> Option<()> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    // The body's UTF-8 checked once, in one pass; a body that is not UTF-8
    // is the slow path's to name.
    let body = std::str::from_utf8(body).ok()?;
    let mut r = Reader::new(body);
    let (mut sensor, mut send_time, mut data_version) = (Loose::Null, Loose::Null, Loose::Null);
    let mut data_seen = false;
    r.object(|r, name| {
        match &*name {
            "sensor" => sensor = loose(r)?,
            "sendTime" => send_time = loose(r)?,
            "dataVersion" => data_version = loose(r)?,
            "data" if data_seen => return None,
            "data" => {
                data_seen = true;
                data(r, sink)?;
            }
            _ => r.skip()?,
        }
        Some(())
    })?;
    r.end()?;
    match data_version.as_str() {
        Some(V1P1 | V1P2) => {}
        _ => return None,
    }
    sensor.text()?;
    time(send_time.as_str()?)?;
    data_seen.then_some(())
}

/// Maps the events of `data` into `sink` as they are read (none is kept:
/// an event read is an event mapped); anything but an array of objects,
/// each taken, gives up.
fn data<S: Sink>(r: &mut Reader<'_>, sink: &mut S) -> Option<()> {
    let mut index = 0;
    r.array(|r| {
        let i = item(r)?;
        event(sink, index, &i).ok()?;
        index += 1;
        Some(())
    })
}

fn item<'a>(r: &mut Reader<'a>) -> Option<Item<'a>> {
    let mut i = Item::default();
    r.object(|r, name| {
        match &*name {
            "@context" => i.context = loose(r)?,
            "@type" | "@id" => {
                r.skip()?;
                i.caliper_1_0_key = true;
            }
            "type" => i.ty = loose(r)?,
            "id" => i.id = loose(r)?,
            "action" => i.action = loose(r)?,
            "eventTime" => i.event_time = loose(r)?,
            "actor" => i.actor = entity(r)?,
            "object" => i.object = entity(r)?,
            "group" => i.group = entity(r)?,
            "edApp" => i.ed_app = entity(r)?,
            "session" => i.session = entity(r)?,
            "membership" => i.membership = entity(r)?,
            _ => r.skip()?,
        }
        Some(())
    })?;
    Some(i)
}

fn loose<'a>(r: &mut Reader<'a>) -> Option<Loose<'a>> {
    match r.peek()? {
        b'"' => r.string().map(Loose::Str),
        b'n' => r.null().map(|_| Loose::Null),
        _ => r.skip().map(|_| Loose::Other),
    }
}

fn roles<'a>(r: &mut Reader<'a>) -> Option<Roles<'a>> {
    match r.peek()? {
        b'"' => {
            let s = r.string()?;
            Some(if s.is_empty() { Roles::Bad } else { Roles::Texts(vec![s]) })
        }
        b'n' => r.null().map(|_| Roles::None),
        b'[' => {
            let (mut texts, mut bad) = (Vec::new(), false);
            r.array(|r| {
                match loose(r)? {
                    Loose::Str(s) if !s.is_empty() => texts.push(s),
                    _ => bad = true,
                }
                Some(())
            })?;
            Some(if bad { Roles::Bad } else { Roles::Texts(texts) })
        }
        _ => r.skip().map(|_| Roles::Bad),
    }
}

fn entity<'a>(r: &mut Reader<'a>) -> Option<Entity<'a>> {
    match r.peek()? {
        b'"' => r.string().map(Entity::Iri),
        b'n' => r.null().map(|_| Entity::Absent),
        b'{' => {
            let (mut id, mut ty, mut found) = (Loose::Null, Loose::Null, Roles::None);
            r.object(|r, name| {
                match &*name {
                    "id" => id = loose(r)?,
                    "type" => ty = loose(r)?,
                    "roles" => found = roles(r)?,
                    _ => r.skip()?,
                }
                Some(())
            })?;
            Some(Entity::Object { id, ty, roles: found })
        }
        _ => r.skip().map(|_| Entity::Other),
    }
}

/// An event as the fast path maps it, its strings borrowed from the body.
pub(super) struct Mapped<'a> {
    id: &'a str,
    kind: ActivityKind,
    at: DateTime<Utc>,
    student: &'a str,
    section: Option<&'a str>,
    direction: Option<Direction>,
    /// Name and value, in name order, none empty (as `Draft::attr` keeps them).
    attributes: [(&'static str, &'a str); 4],
    n_attributes: usize,
}

impl<'a> Mapped<'a> {
    fn attr(&mut self, name: &'static str, value: &'a str) {
        if !value.is_empty() {
            debug_assert!(self.attributes[..self.n_attributes].iter().all(|(k, _)| *k < name), "{name} out of order");
            self.attributes[self.n_attributes] = (name, value);
            self.n_attributes += 1;
        }
    }

    fn attributes(&self) -> &[(&'static str, &'a str)] {
        &self.attributes[..self.n_attributes]
    }

    /// The owned draft `Normalizer::emit_with` resolves.
    fn draft(&self) -> Draft {
        let mut d = Draft::new(self.id.to_string(), self.kind, self.at, self.student.to_string());
        d.section_key = self.section.map(str::to_string);
        d.direction = self.direction;
        for (k, v) in self.attributes() {
            d.attr(k, *v);
        }
        d
    }
}

/// Where the fast path files what it maps.
trait Sink {
    fn ignore(&mut self, what: String);
    /// Whether the view knows this person key as a student or as staff.
    fn role_of(&self, key: &str) -> Option<Role>;
    fn emit(&mut self, index: usize, label: &dyn Fn() -> String, m: &Mapped<'_>);
}

/// Into an [`Outcome`], as every other normalizer files its events.
impl Sink for Normalizer<'_> {
    fn ignore(&mut self, what: String) {
        self.out.ignore(what);
    }

    fn role_of(&self, key: &str) -> Option<Role> {
        Normalizer::role_of(self, key)
    }

    fn emit(&mut self, index: usize, label: &dyn Fn() -> String, m: &Mapped<'_>) {
        self.emit_with(|| format!("data[{index}]"), label, m.draft());
    }
}

/// Straight to Avro when the view knows everything the event names; what
/// waits or is staff goes through the [`Normalizer`], as it would have.
struct Encoder<'a> {
    n: Normalizer<'a>,
    received_at: DateTime<Utc>,
    out: Encoded,
}

impl Sink for Encoder<'_> {
    fn ignore(&mut self, what: String) {
        self.n.out.ignore(what);
    }

    fn role_of(&self, key: &str) -> Option<Role> {
        self.n.role_of(key)
    }

    fn emit(&mut self, index: usize, label: &dyn Fn() -> String, m: &Mapped<'_>) {
        let (ids, source) = (self.n.ids, self.n.source);
        // The fast path names no staff member; these are `resolve`'s
        // lookups for a student and a class.
        let student = ids.get(source, IdType::Student, m.student);
        let section = match m.section {
            None => Some(None),
            Some(key) => ids.get(source, IdType::Section, key).map(|i| Some(i.id.as_str())),
        };
        let (Some(student), Some(section_id)) = (student, section) else {
            return self.n.emit_with(|| format!("data[{index}]"), label, m.draft());
        };
        self.out.push(ActivityEventRef {
            event_id: m.id,
            source,
            student_id: &student.id,
            school_id: &student.school_id,
            section_id,
            staff_id: None,
            kind: m.kind,
            direction: m.direction,
            occurred_at: m.at,
            assigned_date: None,
            live_session_id: None,
            duration_seconds: None,
            attributes: m.attributes().iter().copied(),
            received_at: Some(self.received_at),
        });
    }
}

fn event<S: Sink>(n: &mut S, index: usize, item: &Item) -> Result<(), GiveUp> {
    if caliper_1_0(item) || item.ty.as_str() == Some("MediaEvent") {
        // Refused, or paired with other events of the request.
        return Err(GiveUp);
    }
    let ty = item.ty.text().ok_or(GiveUp)?;
    if !ty.ends_with("Event") {
        // Entities may travel in `data` beside events (Caliper §5.2).
        n.ignore(format!("entity {ty}"));
        return Ok(());
    }
    let id = item.id.text().ok_or(GiveUp)?;
    let action = item.action.text().ok_or(GiveUp)?;
    let at = time(item.event_time.as_str().ok_or(GiveUp)?).ok_or(GiveUp)?;
    let object_id = item.object.id().ok_or(GiveUp)?;
    let student = item.actor.id().ok_or(GiveUp)?;
    let group = if item.group.is_absent() { None } else { Some(item.group.id().ok_or(GiveUp)?) };
    let label = || format!("{ty}.{action}");
    if action == "TimedOut" {
        return Err(GiveUp);
    }
    if item.actor.ty() == Some("SoftwareApplication") {
        n.ignore(format!("{} by a SoftwareApplication", label()));
        return Ok(());
    }
    let kind = match (ty, action) {
        ("SessionEvent", "LoggedIn") => ActivityKind::Login,
        ("SessionEvent", "LoggedOut") => ActivityKind::Logout,
        ("AssignableEvent" | "AssessmentEvent", "Submitted") => ActivityKind::Submission,
        ("MessageEvent", "Posted") => ActivityKind::Message,
        ("NavigationEvent", "NavigatedTo") | ("ViewEvent", "Viewed") | ("ToolUseEvent", "Used") => ActivityKind::ContentAccess,
        ("MediaEvent", _) => return Err(GiveUp),
        _ => {
            n.ignore(label());
            return Ok(());
        }
    };
    let ed_app = if item.ed_app.is_absent() { None } else { Some(item.ed_app.id().ok_or(GiveUp)?) };
    let session = if item.session.is_absent() { None } else { Some(item.session.id().ok_or(GiveUp)?) };
    let roles: Vec<&str> = match &item.membership {
        Entity::Object { roles: Roles::Texts(r), .. } => r.iter().map(|r| &**r).collect(),
        Entity::Object { roles: Roles::Bad, .. } => return Err(GiveUp),
        _ => Vec::new(),
    };
    let roles_joined = roles.join(",");
    let mut m = Mapped { id, kind, at, student, section: group, direction: None, attributes: [("", ""); 4], n_attributes: 0 };
    // In name order.
    m.attr("ed_app", ed_app.unwrap_or(""));
    m.attr("object_id", object_id);
    m.attr("roles", &roles_joined);
    m.attr("session_id", session.unwrap_or(""));
    if kind == ActivityKind::Message {
        let direction = match classify_roles(&roles) {
            Some(role) => role,
            None => n.role_of(student).unwrap_or(Role::Student),
        };
        match direction {
            Role::Student => m.direction = Some(Direction::FromStudent),
            // Whom a staff post is to is `normalize_value`'s to find.
            Role::Staff => return Err(GiveUp),
        }
    }
    n.emit(index, &label, &m);
    Ok(())
}
