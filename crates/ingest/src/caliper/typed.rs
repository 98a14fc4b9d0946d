//! The gateway's fast path for Caliper: the envelope read straight into
//! typed structs whose strings borrow from the body, for the requests that
//! make up nearly all traffic (logins and logouts, submissions, content
//! access, a learner's messages, entities and ignored events).
//!
//! It decides nothing of its own. Anything it is not sure of (any error,
//! any event it does not map, a repeated member name, a Caliper 1.0 marker,
//! a MediaEvent, a TimedOut, a staff member's message) makes it give up,
//! and the request is read again by [`super::normalize_value`], which says
//! what is wrong with it and where. What it accepts it maps exactly as
//! `normalize_value` does: the test below holds the two to the same outcome
//! on every fixture and on generated envelopes.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use rollcall_model::{ActivityKind, Direction};
use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use rollcall_model::avro::ActivityEventRef;

use super::{classify_roles, V1P1, V1P2};
use crate::encoded::Encoded;
use crate::json::KeySeed;
use crate::{Draft, IdType, IdentityView, Normalizer, Outcome, Role};

/// The envelope's members but `data`, whose events are mapped as they are
/// read (none is kept: an event read is an event mapped). Every value is
/// parsed, none skipped unread: `serde_json` checks less of what it skips
/// (a number's range, a lone surrogate) than of what it reads. A member
/// named twice is read as its last value, as `serde_json::Value` reads it
/// (but `data` twice makes the fast path give up).
#[derive(Default)]
struct Envelope<'a> {
    sensor: Loose<'a>,
    send_time: Loose<'a>,
    data_version: Loose<'a>,
    /// `data` was an array of objects, each of which the fast path took.
    data_taken: bool,
}

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

/// Implements the visitor methods of every kind of value but maps and
/// arrays, as `$other` (the value is read, and dropped).
macro_rules! scalars_are {
    ($t:ty, $other:expr, $null:expr) => {
        fn visit_borrowed_str<E>(self, _: &'de str) -> Result<$t, E> {
            Ok($other)
        }

        fn visit_str<E>(self, _: &str) -> Result<$t, E> {
            Ok($other)
        }

        fn visit_bool<E>(self, _: bool) -> Result<$t, E> {
            Ok($other)
        }

        fn visit_i64<E>(self, _: i64) -> Result<$t, E> {
            Ok($other)
        }

        fn visit_u64<E>(self, _: u64) -> Result<$t, E> {
            Ok($other)
        }

        fn visit_f64<E>(self, _: f64) -> Result<$t, E> {
            Ok($other)
        }

        fn visit_unit<E>(self) -> Result<$t, E> {
            Ok($null)
        }

        fn visit_none<E>(self) -> Result<$t, E> {
            Ok($null)
        }
    };
}

/// Reads the envelope into `n`; `None` for anything but an object.
struct EnvelopeSeed<'s, S> {
    n: &'s mut S,
}

impl<'de, S: Sink> DeserializeSeed<'de> for EnvelopeSeed<'_, S> {
    type Value = Option<Envelope<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Envelope<'de>>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: Sink> Visitor<'de> for EnvelopeSeed<'_, S> {
    type Value = Option<Envelope<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Caliper envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Envelope<'de>>, A::Error> {
        let mut e = Envelope::default();
        let mut data_seen = false;
        while let Some(k) = map.next_key_seed(KeySeed)? {
            match &*k {
                "sensor" => e.sensor = map.next_value()?,
                "sendTime" => e.send_time = map.next_value()?,
                "dataVersion" => e.data_version = map.next_value()?,
                "data" if data_seen => return Err(serde::de::Error::custom("`data` twice")),
                "data" => {
                    data_seen = true;
                    e.data_taken = map.next_value_seed(DataSeed { n: &mut *self.n })?;
                }
                _ => {
                    map.next_value::<Loose<'de>>()?;
                }
            }
        }
        Ok(Some(e))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<Envelope<'de>>, A::Error> {
        LooseVisitor.visit_seq(seq).map(|_| None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<Envelope<'de>>, D::Error> {
        self.deserialize(d)
    }

    scalars_are!(Option<Envelope<'de>>, None, None);
}

/// Maps the events of `data` into `n` as they are read; whether it was an
/// array of objects, each taken.
struct DataSeed<'s, S> {
    n: &'s mut S,
}

impl<'de, S: Sink> DeserializeSeed<'de> for DataSeed<'_, S> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: Sink> Visitor<'de> for DataSeed<'_, S> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`data`")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut index = 0;
        let mut all = true;
        while let Some(taken) = seq.next_element_seed(ItemSeed { n: &mut *self.n, index })? {
            all &= taken;
            index += 1;
        }
        Ok(all)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        LooseVisitor.visit_map(map).map(|_| false)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        self.deserialize(d)
    }

    scalars_are!(bool, false, false);
}

/// Maps `data[index]` into `n` once it is read; whether it was an object.
/// An event the fast path does not take ends the reading (an error).
struct ItemSeed<'s, S> {
    n: &'s mut S,
    index: usize,
}

impl<'de, S: Sink> DeserializeSeed<'de> for ItemSeed<'_, S> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: Sink> Visitor<'de> for ItemSeed<'_, S> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an element of `data`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut i = Item::default();
        while let Some(k) = map.next_key_seed(KeySeed)? {
            match &*k {
                "@context" => i.context = map.next_value()?,
                "@type" | "@id" => {
                    map.next_value::<Loose<'de>>()?;
                    i.caliper_1_0_key = true;
                }
                "type" => i.ty = map.next_value()?,
                "id" => i.id = map.next_value()?,
                "action" => i.action = map.next_value()?,
                "eventTime" => i.event_time = map.next_value()?,
                "actor" => i.actor = map.next_value()?,
                "object" => i.object = map.next_value()?,
                "group" => i.group = map.next_value()?,
                "edApp" => i.ed_app = map.next_value()?,
                "session" => i.session = map.next_value()?,
                "membership" => i.membership = map.next_value()?,
                _ => {
                    map.next_value::<Loose<'de>>()?;
                }
            }
        }
        match event(self.n, self.index, &i) {
            Ok(()) => Ok(true),
            Err(GiveUp) => Err(serde::de::Error::custom("left to normalize_value")),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        LooseVisitor.visit_seq(seq).map(|_| false)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        self.deserialize(d)
    }

    scalars_are!(bool, false, false);
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

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Loose<'de>, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Owned(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Owned(s)))
    }

    fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
        Ok(Loose::Null)
    }

    fn visit_none<E>(self) -> Result<Loose<'de>, E> {
        Ok(Loose::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Loose<'de>, D::Error> {
        Loose::deserialize(d)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Loose<'de>, E> {
        Ok(Loose::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Loose<'de>, E> {
        Ok(Loose::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Loose<'de>, E> {
        Ok(Loose::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Loose<'de>, E> {
        Ok(Loose::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'de>, A::Error> {
        while seq.next_element::<Loose<'de>>()?.is_some() {}
        Ok(Loose::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose<'de>, A::Error> {
        while map.next_key_seed(KeySeed)?.is_some() {
            map.next_value::<Loose<'de>>()?;
        }
        Ok(Loose::Other)
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

impl<'de> Deserialize<'de> for Roles<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Roles<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Roles<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("roles")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Roles<'de>, A::Error> {
                let mut roles = Vec::new();
                let mut bad = false;
                while let Some(r) = seq.next_element::<Loose<'de>>()? {
                    match r {
                        Loose::Str(s) if !s.is_empty() => roles.push(s),
                        _ => bad = true,
                    }
                }
                Ok(if bad { Roles::Bad } else { Roles::Texts(roles) })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Roles<'de>, A::Error> {
                LooseVisitor.visit_map(map).map(|_| Roles::Bad)
            }

            fn visit_unit<E>(self) -> Result<Roles<'de>, E> {
                Ok(Roles::None)
            }

            fn visit_none<E>(self) -> Result<Roles<'de>, E> {
                Ok(Roles::None)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Roles<'de>, D::Error> {
                Roles::deserialize(d)
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Roles<'de>, E> {
                Ok(one(Cow::Borrowed(s)))
            }

            fn visit_str<E>(self, s: &str) -> Result<Roles<'de>, E> {
                Ok(one(Cow::Owned(s.to_string())))
            }

            fn visit_string<E>(self, s: String) -> Result<Roles<'de>, E> {
                Ok(one(Cow::Owned(s)))
            }

            fn visit_bool<E>(self, _: bool) -> Result<Roles<'de>, E> {
                Ok(Roles::Bad)
            }

            fn visit_i64<E>(self, _: i64) -> Result<Roles<'de>, E> {
                Ok(Roles::Bad)
            }

            fn visit_u64<E>(self, _: u64) -> Result<Roles<'de>, E> {
                Ok(Roles::Bad)
            }

            fn visit_f64<E>(self, _: f64) -> Result<Roles<'de>, E> {
                Ok(Roles::Bad)
            }
        }
        fn one(s: Cow<'_, str>) -> Roles<'_> {
            if s.is_empty() {
                Roles::Bad
            } else {
                Roles::Texts(vec![s])
            }
        }
        d.deserialize_any(V)
    }
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

impl<'de> Deserialize<'de> for Entity<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entity<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entity<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an entity")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Entity<'de>, E> {
                Ok(Entity::Iri(Cow::Borrowed(s)))
            }

            fn visit_str<E>(self, s: &str) -> Result<Entity<'de>, E> {
                Ok(Entity::Iri(Cow::Owned(s.to_string())))
            }

            fn visit_string<E>(self, s: String) -> Result<Entity<'de>, E> {
                Ok(Entity::Iri(Cow::Owned(s)))
            }

            fn visit_unit<E>(self) -> Result<Entity<'de>, E> {
                Ok(Entity::Absent)
            }

            fn visit_none<E>(self) -> Result<Entity<'de>, E> {
                Ok(Entity::Absent)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Entity<'de>, D::Error> {
                Entity::deserialize(d)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Entity<'de>, E> {
                Ok(Entity::Other)
            }

            fn visit_i64<E>(self, _: i64) -> Result<Entity<'de>, E> {
                Ok(Entity::Other)
            }

            fn visit_u64<E>(self, _: u64) -> Result<Entity<'de>, E> {
                Ok(Entity::Other)
            }

            fn visit_f64<E>(self, _: f64) -> Result<Entity<'de>, E> {
                Ok(Entity::Other)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Entity<'de>, A::Error> {
                LooseVisitor.visit_seq(seq).map(|_| Entity::Other)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entity<'de>, A::Error> {
                // A repeated name is read as its last value, as
                // `serde_json::Value` reads it.
                let (mut id, mut ty, mut roles) = (Loose::Null, Loose::Null, Roles::None);
                while let Some(k) = map.next_key_seed(KeySeed)? {
                    match &*k {
                        "id" => id = map.next_value()?,
                        "type" => ty = map.next_value()?,
                        "roles" => roles = map.next_value()?,
                        _ => {
                            map.next_value::<Loose<'de>>()?;
                        }
                    }
                }
                Ok(Entity::Object { id, ty, roles })
            }
        }
        d.deserialize_any(V)
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
/// gives up on it.
fn read<S: Sink>(body: &[u8], sink: &mut S) -> Option<()> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    // The body's UTF-8 checked once, in one pass, instead of string by
    // string as the slice reader does (a twentieth of the gateway's CPU);
    // a body that is not UTF-8 is the slow path's to name.
    let body = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(body);
    let env = EnvelopeSeed { n: sink }.deserialize(&mut de).ok()??;
    de.end().ok()?;
    match env.data_version.as_str() {
        Some(V1P1 | V1P2) => {}
        _ => return None,
    }
    env.sensor.text()?;
    time(env.send_time.as_str()?)?;
    env.data_taken.then_some(())
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
    let roles: Vec<String> = match &item.membership {
        Entity::Object { roles: Roles::Texts(r), .. } => r.iter().map(|r| r.to_string()).collect(),
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
