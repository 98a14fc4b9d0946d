//! Enrollments: the teacher of each class, then each student's classes,
//! the homeroom first.

use std::collections::{BTreeSet, HashMap};

use rollcall_model::{CourseType, Enrollment};

use super::classes::Catalog;
use super::companion::{SectionKind, Sections};
use super::files::{in_force, vocabulary, Listed, Row, Tables};
use super::people::People;
use super::Ctx;

/// What the first pass over enrollments.csv found.
pub(super) struct Taught<'t> {
    /// A class → (primary, the teacher's index in `users`).
    teacher: HashMap<&'t str, (bool, usize)>,
    /// The students' rows in force, in file order: (row, student, class).
    student_rows: Vec<(Row<'t>, usize, &'t str)>,
    /// Classes whose teacher's row is bad: their students' rows are left
    /// out without an error of their own, as for any row's dependents.
    untaught: BTreeSet<&'t str>,
}

/// Enrollments: teachers first (a student's row may come before its
/// class's teacher's), then students. Teachers join `people.staff`.
pub(super) fn teachers<'t>(t: &'t Tables, catalog: &Catalog, listed: &Listed, people: &mut People, cx: &mut Ctx) -> Taught<'t> {
    let errors = &mut cx.errors;
    let unique = &mut cx.unique;
    let opts = cx.opts;
    let classes = &catalog.classes;
    let is_school = |id: &str| catalog.is_school(id);
    let People { user_at, student_school, staff, tainted, .. } = people;
    let mut teacher: HashMap<&str, (bool, usize)> = HashMap::new();
    let mut student_rows: Vec<(Row, usize, &str)> = Vec::new();
    let mut untaught: BTreeSet<&str> = BTreeSet::new();
    for r in t.enrollments.rows() {
        if unique.check(&r, errors).is_none() || !r.bulk_status(errors) {
            continue;
        }
        let class_id = r.get("classSourcedId");
        let Some(class) = classes.get(class_id) else {
            if !listed.classes.contains(class_id) {
                errors.push(r.err("classSourcedId", format!("`{class_id}` is not a class of classes.csv")));
            }
            continue;
        };
        let teaches = r.get("role") == "teacher";
        let school = r.get("schoolSourcedId");
        if !is_school(school) {
            errors.push(r.err("schoolSourcedId", format!("`{school}` is not a school of orgs.csv")));
            if teaches {
                untaught.insert(class_id);
            }
            continue;
        }
        let user = r.get("userSourcedId");
        let Some(&i) = user_at.get(user) else {
            if !listed.users.contains(user) {
                errors.push(r.err("userSourcedId", format!("`{user}` is not a user of users.csv")));
            }
            if teaches {
                untaught.insert(class_id);
            }
            continue;
        };
        let primary = match r.get("primary") {
            "true" => true,
            "false" | "" => false,
            other => {
                errors.push(r.err("primary", format!("`{other}` is not true or false")));
                if teaches {
                    untaught.insert(class_id);
                }
                continue;
            }
        };
        let (Ok(begin), Ok(end)) = (r.date("beginDate", errors), r.date("endDate", errors)) else {
            if teaches {
                untaught.insert(class_id);
            }
            continue;
        };
        let role = r.get("role");
        if !vocabulary(role, &["administrator", "proctor", "student", "teacher"]) {
            errors.push(r.err("role", format!("`{role}` is not one of administrator, proctor, student, teacher")));
            continue;
        }
        if !in_force(opts.as_of, begin, end) || !class.in_force {
            cx.counts.not_in_force += 1;
            continue;
        }
        match role {
            "teacher" => {
                staff.insert(i);
                let slot = teacher.entry(class_id).or_insert((primary, i));
                if primary && !slot.0 {
                    *slot = (true, i);
                }
            }
            "student" => {
                if !student_school.contains_key(&i) {
                    if tainted.contains(&i) {
                        continue;
                    }
                    errors.push(r.err("userSourcedId", format!("`{user}` is enrolled as a student but has no student role")));
                    continue;
                }
                student_rows.push((r, i, class_id));
            }
            _ => {}
        }
    }
    Taught { teacher, student_rows, untaught }
}

/// Student enrollments, in file order, the homeroom first.
pub(super) fn assign(taught: Taught, sections: &Sections, catalog: &Catalog, people: &mut People, cx: &mut Ctx) {
    let errors = &mut cx.errors;
    let opts = cx.opts;
    let classes = &catalog.classes;
    let Taught { teacher, student_rows, untaught } = taught;
    let Sections { kinds, meetings } = sections;
    let People { users, students, .. } = people;
    let mut homeroom_line: HashMap<usize, u64> = HashMap::new();
    for (r, i, class_id) in student_rows {
        let Some(student) = students.get_mut(&i) else { continue };
        cx.counts.enrollments += 1;
        let Some(&(_, t)) = teacher.get(class_id) else {
            if !untaught.contains(class_id) {
                errors.push(r.err("classSourcedId", format!("class `{class_id}` has no teacher enrollment in force")));
            }
            continue;
        };
        if student.enrollment(class_id).is_some() {
            continue;
        }
        let staff_id = users[t].sis_id(opts.sis_id).to_string();
        let kind = kinds.get(class_id).map(|(_, k)| k.clone()).unwrap_or(SectionKind {
            course_type: CourseType::Live,
            specials: false,
            dual_enrollment: false,
        });
        let enrollment = Enrollment {
            section_id: class_id.to_string(),
            staff_id: staff_id.clone(),
            course_type: kind.course_type,
            specials: kind.specials,
            dual_enrollment: kind.dual_enrollment,
            meetings: meetings.get(class_id).cloned().unwrap_or_default(),
        };
        let homeroom = classes.get(class_id).is_some_and(|c| c.homeroom);
        if homeroom {
            if let Some(first) = homeroom_line.get(&i) {
                errors.push(r.err("classSourcedId", format!("a second homeroom for the student (the first on line {first})")));
                continue;
            }
            homeroom_line.insert(i, r.line);
            student.homeroom_section_id = Some(class_id.to_string());
            student.homeroom_staff_id = Some(staff_id);
            student.enrollments.insert(0, enrollment);
        } else {
            student.enrollments.push(enrollment);
        }
    }
}
