//! The IdentityRecords per source: each student's and staff member's keys,
//! and each class in force.

use std::collections::HashMap;

use rollcall_model::{IdentityRecord, IdentityType};

use super::classes::Catalog;
use super::people::People;
use super::{Ctx, RosterError};

/// The identities of the students, the staff and the classes in force, for
/// each of `opts.sources`; sets `counts.staff`.
pub(super) fn identities(people: &People, catalog: &Catalog, cx: &mut Ctx) -> Vec<IdentityRecord> {
    let errors = &mut cx.errors;
    let opts = cx.opts;
    let People { users, student_school, staff, students, .. } = people;
    let Catalog { classes, class_order, .. } = catalog;
    cx.counts.staff = staff.iter().filter(|i| !student_school.contains_key(i)).count();
    let mut identities = Vec::new();
    let mut mapped: HashMap<(String, IdentityType, String), (usize, String)> = HashMap::new();
    for source in &opts.sources {
        let mut add = |kind: IdentityType,
                       key: String,
                       id: &str,
                       school: Option<&str>,
                       place: (&str, u64),
                       errors: &mut Vec<RosterError>| {
            let record = IdentityRecord {
                source: source.clone(),
                kind,
                external_id: key.clone(),
                id: id.to_string(),
                school_id: school.map(str::to_string),
            };
            match mapped.get(&(source.clone(), kind, key.clone())) {
                Some((at, _)) if identities.get(*at) == Some(&record) => {}
                Some((at, first)) => errors.push(RosterError::Row {
                    file: place.0.into(),
                    line: place.1,
                    column: None,
                    problem: format!(
                        "{source} {} key `{key}` would stand for `{id}` and for `{}` ({first})",
                        kind.as_str().to_lowercase(),
                        identities.get(*at).map_or("", |r: &IdentityRecord| r.id.as_str())
                    ),
                }),
                None => {
                    mapped.insert((source.clone(), kind, key), (identities.len(), format!("{}:{}", place.0, place.1)));
                    identities.push(record);
                }
            }
        };
        for (i, s) in students {
            let u = &users[*i];
            for key in u.keys(&opts.identity_keys) {
                add(IdentityType::Student, key, &s.student_id, Some(&s.school_id), ("users.csv", u.line), errors);
            }
        }
        for i in staff.iter().filter(|i| !student_school.contains_key(i)) {
            let u = &users[*i];
            for key in u.keys(&opts.identity_keys) {
                add(IdentityType::Staff, key, u.sis_id(opts.sis_id), None, ("users.csv", u.line), errors);
            }
        }
        for id in class_order {
            if let Some(c) = classes.get(id).filter(|c| c.in_force) {
                add(IdentityType::Section, id.clone(), id, Some(&c.school), ("classes.csv", c.line), errors);
            }
        }
    }
    identities
}
