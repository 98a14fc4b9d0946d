//! Events that wait for the world to catch up with them.
//!
//! A new enrollee's first login often comes before the nightly roster sync,
//! and a school's first events can come before its calendar. Refusing them
//! at once would lose the student's first days for good, so such an event
//! is parked (table `Parked`, key `student \0 event_id`) with the instant it
//! was parked, and a per-student timer at the end of its wait. A roster
//! record or a calendar that makes it resolvable releases it: it is applied
//! then, as late data, and the days it touches are decided by the usual
//! rules for late events. A timer that finds it still parked refuses it,
//! as an [`Output::Refused`] the runtime dead-letters.

use chrono::{DateTime, Duration, Utc};
use rollcall_model::avro::AvroRecord;
use rollcall_model::ActivityEvent;

use super::{reject, Applied, ApplyError, DeadLetterKind, Engine, EngineError, Output, Refusal, Rejection};
use crate::kv::{KvStore, Table};
use crate::state::{self, TimerAction};

fn parked_key(student: &str, event_id: &str) -> Vec<u8> {
    let mut k = state::student_prefix(student);
    k.extend_from_slice(event_id.as_bytes());
    k
}

/// The parked instant (micros, big-endian) then the event's Avro datum.
fn encode(parked_at: DateTime<Utc>, ev: &ActivityEvent) -> Result<Vec<u8>, ApplyError> {
    let mut v = parked_at.timestamp_micros().to_be_bytes().to_vec();
    v.extend(ev.to_avro_datum().map_err(|e| reject(DeadLetterKind::InvalidRecord, e.to_string()))?);
    Ok(v)
}

fn decode(key: &[u8], v: &[u8]) -> Result<ActivityEvent, EngineError> {
    let corrupt = |message: String| EngineError::CorruptRecord {
        table: Table::Parked,
        key: String::from_utf8_lossy(key).into_owned(),
        message,
    };
    let datum = v.get(8..).ok_or_else(|| corrupt("shorter than its parked instant".into()))?;
    ActivityEvent::from_avro_datum(datum).map_err(|e| corrupt(e.to_string()))
}

impl<S: KvStore> Engine<S> {
    /// How long an event refused for `kind` may wait, if it may.
    fn wait_for(&self, kind: DeadLetterKind) -> Option<Duration> {
        let wait = match kind {
            DeadLetterKind::UnknownStudent => self.config.unknown_student_wait,
            DeadLetterKind::UnknownSchool => self.config.unknown_school_wait,
            _ => return None,
        };
        (wait > Duration::zero()).then_some(wait)
    }

    /// Parks `ev`, refused as `rejection`, if its kind may wait; otherwise
    /// gives the refusal back.
    pub(super) fn park(&mut self, ev: &ActivityEvent, rejection: Rejection) -> Result<Applied, ApplyError> {
        let Some(wait) = self.wait_for(rejection.kind) else { return Err(ApplyError::Rejected(rejection)) };
        let key = parked_key(&ev.student_id, &ev.event_id);
        if self.store.get(Table::Parked, &key).map_err(EngineError::from)?.is_some() {
            self.stats.duplicates += 1;
            return Ok(Applied::Duplicate);
        }
        let now = self.now_or(ev.occurred_at);
        self.store.put(Table::Parked, &key, &encode(now, ev)?).map_err(EngineError::from)?;
        let due = (now + wait).timestamp_micros();
        let timer = state::timer_key(due, &ev.student_id, &TimerAction::ParkExpires { event_id: ev.event_id.clone() });
        self.store.put(Table::Timer, &timer, &[]).map_err(EngineError::from)?;
        if let Some(t) = self.timers.as_mut() {
            t.insert(timer);
        }
        self.stats.parked += 1;
        Ok(Applied::Parked)
    }

    /// Applies the parked events of `student` that can be resolved now. An
    /// event still waiting stays parked (with its first instant and timer);
    /// one refused for another reason is refused now, as an output.
    pub(super) fn release_parked(&mut self, student: &str) -> Result<(), EngineError> {
        let prefix = state::student_prefix(student);
        let parked = self.store.range(Table::Parked, &prefix, &state::prefix_end(&prefix), usize::MAX)?;
        for (key, value) in parked {
            let ev = decode(&key, &value)?;
            match self.resolve(&ev.student_id, &ev.school_id, &|| String::new()) {
                Err(ApplyError::Rejected(r)) if self.wait_for(r.kind).is_some() => continue,
                Err(ApplyError::Fatal(e)) => return Err(e),
                _ => {}
            }
            self.store.delete(Table::Parked, &key)?;
            self.stats.released += 1;
            match self.apply_event(&ev) {
                Ok(_) => {}
                Err(ApplyError::Rejected(rejection)) => {
                    self.out.push(Output::Refused(Box::new(Refusal { event: ev, rejection, at: self.clock.unwrap_or_default() })))
                }
                Err(ApplyError::Fatal(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// A school's calendar came: release what its students' events parked
    /// for. The parked table is small (it holds only what waits), so one
    /// scan of it beats a look-up per student of the school.
    pub(super) fn release_parked_at_school(&mut self, school: &str) -> Result<(), EngineError> {
        let mut students: Vec<String> = Vec::new();
        for (key, _) in self.store.range(Table::Parked, &[], &[0xff], usize::MAX)? {
            let Some(sep) = key.iter().position(|b| *b == 0) else { continue };
            let id = String::from_utf8_lossy(&key[..sep]).into_owned();
            if students.last() != Some(&id) {
                students.push(id);
            }
        }
        for id in students {
            if self.student(&id)?.is_some_and(|s| s.school_id == school) {
                self.release_parked(&id)?;
            }
        }
        Ok(())
    }

    /// The wait of a parked event is over: refuse it if it is still parked.
    pub(super) fn expire_parked(&mut self, student: &str, event_id: &str) -> Result<(), EngineError> {
        let key = parked_key(student, event_id);
        let Some(value) = self.store.get(Table::Parked, &key)? else { return Ok(()) };
        let ev = decode(&key, &value)?;
        self.store.delete(Table::Parked, &key)?;
        let parked_at = value.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(i64::from_be_bytes).unwrap_or_default();
        let since = DateTime::from_timestamp_micros(parked_at).map(|t| t.to_rfc3339()).unwrap_or_default();
        let rejection = match self.resolve(&ev.student_id, &ev.school_id, &|| format!("event `{}`", ev.event_id)) {
            Err(ApplyError::Rejected(r)) => Rejection {
                kind: r.kind,
                message: format!("{} (waited from {since}; `rollcall dlq replay` puts it back once it is known)", r.message),
            },
            Err(ApplyError::Fatal(e)) => return Err(e),
            // Resolvable after all (a release it missed): apply it now.
            Ok(_) => {
                self.stats.released += 1;
                return match self.apply_event(&ev) {
                    Ok(_) => Ok(()),
                    Err(ApplyError::Rejected(rejection)) => {
                        self.out.push(Output::Refused(Box::new(Refusal {
                            event: ev,
                            rejection,
                            at: self.clock.unwrap_or_default(),
                        })));
                        Ok(())
                    }
                    Err(ApplyError::Fatal(e)) => Err(e),
                };
            }
        };
        self.stats.expired += 1;
        self.out.push(Output::Refused(Box::new(Refusal { event: ev, rejection, at: self.clock.unwrap_or_default() })));
        Ok(())
    }

    /// Events parked now, waiting for a roster record or a calendar.
    pub fn parked(&self) -> Result<usize, EngineError> {
        Ok(self.store.range(Table::Parked, &[], &[0xff], usize::MAX)?.len())
    }
}

#[cfg(test)]
mod tests {
    use rollcall_model::{GradeLevel, SchoolCalendar, StudentRecord};

    use super::super::fixtures::{at, chicago_school, submission as login};
    use super::*;
    use crate::kv::MemStore;
    use crate::EngineConfig;

    fn determinations(outs: &[Output]) -> Vec<(String, String, String)> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Determination(d) => Some((d.student_id.clone(), d.code.clone(), d.finality.to_string())),
                _ => None,
            })
            .collect()
    }

    fn refusals(outs: &[Output]) -> Vec<&Refusal> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Refused(r) => Some(&**r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_new_enrollee_s_first_day_waits_for_the_roster_sync() {
        let mut e = chicago_school(&["a"]);
        e.advance(at("2020-10-05T15:00:00Z")).unwrap();
        // Monday 10:00 CDT: a submission by a student the roster does not have yet.
        assert_eq!(e.apply_event(&login("x1", "new", "2020-10-05T15:00:00Z")).unwrap(), Applied::Parked);
        assert_eq!(e.apply_event(&login("x1", "new", "2020-10-05T15:00:00Z")).unwrap(), Applied::Duplicate);
        assert_eq!(e.parked().unwrap(), 1);
        // The night passes: Monday closes without the student.
        e.advance(at("2020-10-06T07:00:00Z")).unwrap();
        assert!(determinations(&e.take_outputs()).iter().all(|(s, _, _)| s != "new"));
        // The roster sync brings the record: the event is applied, as late data.
        e.upsert_student(StudentRecord::new("new", "sch", GradeLevel::G3)).unwrap();
        assert_eq!(e.parked().unwrap(), 0);
        e.advance(at("2020-10-06T07:01:00Z")).unwrap();
        let out = e.take_outputs();
        assert_eq!(determinations(&out), vec![("new".into(), "P".into(), "FINAL".into())], "{out:?}");
        assert_eq!((e.stats().parked, e.stats().released, e.stats().expired), (1, 1, 0));
    }

    #[test]
    fn an_event_whose_student_never_comes_is_refused_when_its_wait_is_over() {
        let mut e = chicago_school(&["a"]);
        e.advance(at("2020-10-05T15:00:00Z")).unwrap();
        assert_eq!(e.apply_event(&login("x1", "nobody", "2020-10-05T15:00:00Z")).unwrap(), Applied::Parked);
        e.advance(at("2020-10-08T14:59:00Z")).unwrap();
        assert!(refusals(&e.take_outputs()).is_empty(), "three days: not yet");
        e.advance(at("2020-10-08T15:00:00Z")).unwrap();
        let out = e.take_outputs();
        let r = refusals(&out);
        assert_eq!(r.len(), 1, "{out:?}");
        assert_eq!((r[0].event.event_id.as_str(), r[0].rejection.kind), ("x1", DeadLetterKind::UnknownStudent));
        assert!(
            r[0].rejection.message.contains("`nobody`") && r[0].rejection.message.contains("waited from"),
            "{}",
            r[0].rejection.message
        );
        assert_eq!(e.parked().unwrap(), 0);
        assert_eq!(e.stats().expired, 1);
        // Refused once: its timer does not fire again.
        e.advance(at("2020-10-20T00:00:00Z")).unwrap();
        assert!(refusals(&e.take_outputs()).is_empty());
    }

    #[test]
    fn an_event_waits_for_its_school_s_calendar() {
        let mut e = Engine::open(MemStore::default(), EngineConfig::default()).unwrap();
        e.upsert_student(StudentRecord::new("a", "sch", GradeLevel::G3)).unwrap();
        e.advance(at("2020-10-05T15:00:00Z")).unwrap();
        assert_eq!(e.apply_event(&login("x1", "a", "2020-10-05T15:00:00Z")).unwrap(), Applied::Parked);
        let with_calendar = chicago_school(&[]);
        let cal: SchoolCalendar = with_calendar.school("sch").unwrap().calendar.clone();
        e.load_calendar(cal).unwrap();
        assert_eq!(e.parked().unwrap(), 0);
        e.advance(at("2020-10-05T15:01:00Z")).unwrap();
        assert_eq!(determinations(&e.take_outputs()), vec![("a".into(), "P".into(), "PROVISIONAL".into())]);
    }

    #[test]
    fn parked_events_outlive_a_restart() {
        let mut e = chicago_school(&["a"]);
        e.advance(at("2020-10-05T15:00:00Z")).unwrap();
        e.apply_event(&login("x1", "new", "2020-10-05T15:00:00Z")).unwrap();
        e.commit().unwrap();
        let mut e = Engine::open(e.into_store(), EngineConfig::default()).unwrap();
        assert_eq!(e.parked().unwrap(), 1);
        e.upsert_student(StudentRecord::new("new", "sch", GradeLevel::G3)).unwrap();
        e.advance(at("2020-10-05T15:01:00Z")).unwrap();
        assert_eq!(determinations(&e.take_outputs()), vec![("new".into(), "P".into(), "PROVISIONAL".into())]);
    }

    #[test]
    fn with_no_wait_an_unknown_student_is_refused_at_once() {
        let config = EngineConfig { unknown_student_wait: Duration::zero(), ..EngineConfig::default() };
        let mut e = Engine::open(chicago_school(&["a"]).into_store(), config).unwrap();
        e.advance(at("2020-10-05T15:00:00Z")).unwrap();
        match e.apply_event(&login("x1", "nobody", "2020-10-05T15:00:00Z")) {
            Err(ApplyError::Rejected(r)) => assert_eq!(r.kind, DeadLetterKind::UnknownStudent),
            other => panic!("{other:?}"),
        }
        assert_eq!(e.parked().unwrap(), 0);
    }
}
