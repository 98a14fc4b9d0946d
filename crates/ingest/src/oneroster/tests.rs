use super::*;
use rollcall_model::{CourseType, GradeLevel, IdentityType, Weekday};

fn dir(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oneroster").join(name)
}

/// An export directory's files, with the fixtures' companions.
fn fixture(name: &str) -> Input {
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(dir(name)).unwrap() {
        let p = e.unwrap().path();
        files.insert(p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap());
    }
    let companion = |f: &str| Some(Companion { name: f.to_string(), bytes: std::fs::read(dir(f)).unwrap() });
    Input { files, sections: companion("sections.csv"), modes: companion("modes.csv") }
}

fn opts() -> Options {
    Options { sources: vec!["canvas".into(), "zoom".into()], as_of: NaiveDate::from_ymd_opt(2026, 2, 2), ..Options::default() }
}

fn expected_students() -> Vec<StudentRecord> {
    let text = std::fs::read_to_string(dir("expected-students.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn expected_identities() -> Vec<IdentityRecord> {
    crate::identity::records_from_csv(&std::fs::read(dir("expected-identities.csv")).unwrap()).unwrap()
}

fn messages(errors: &[RosterError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// A 1.1 export in memory: the fixture with some files replaced.
fn with(name: &str, replace: &[(&str, &str)]) -> Input {
    let mut input = fixture(name);
    for (file, text) in replace {
        input.files.insert(file.to_string(), text.as_bytes().to_vec());
    }
    input
}

fn refused(input: &Input) -> Vec<String> {
    messages(&import(input, &opts()).unwrap_err().errors)
}

fn row_errors(input: &Input) -> Vec<String> {
    messages(&import(input, &opts()).unwrap().errors)
}

#[test]
fn a_1p1_district() {
    let i = import(&fixture("v1p1"), &opts()).unwrap();
    assert_eq!(messages(&i.errors), Vec::<String>::new());
    assert_eq!(i.version, Version::V1p1);
    assert_eq!(i.students, expected_students());
    assert_eq!(i.identities, expected_identities());
    assert_eq!(i.counts, Counts { users: 10, staff: 3, classes: 4, enrollments: 9, not_in_force: 4 });
}

#[test]
fn a_1p2_district_is_the_same_district() {
    let i = import(&fixture("v1p2"), &opts()).unwrap();
    assert_eq!(messages(&i.errors), Vec::<String>::new());
    assert_eq!(i.version, Version::V1p2);
    assert_eq!(i.students, expected_students());
    assert_eq!(i.identities, expected_identities());
    // The 1.2 export also has stu-2's role at the other school, which ended.
    assert_eq!(i.counts, Counts { users: 10, staff: 3, classes: 4, enrollments: 9, not_in_force: 5 });
}

#[test]
fn the_mapping_rules() {
    let i = import(&fixture("v1p1"), &opts()).unwrap();
    let s = |id: &str| i.students.iter().find(|s| s.student_id == id).unwrap();
    // identifier when present, else sourcedId.
    assert!(i.students.iter().any(|s| s.student_id == "stu-3"));
    // The primary teacher, though a co-teacher's row comes first.
    assert_eq!(s("S2002").enrollments[0].staff_id, "T-17");
    // The fall class and the enrollment that ended on the date are out;
    // end dates are exclusive.
    assert_eq!(s("S2001").enrollments.iter().map(|e| e.section_id.as_str()).collect::<Vec<_>>(), ["cls-alg1-02", "cls-art7-s2"]);
    assert_eq!(s("stu-3").enrollments.len(), 1);
    // The homeroom: its fields and the first enrollment, though listed second.
    let k = s("S3001");
    assert_eq!((k.homeroom_section_id.as_deref(), k.homeroom_staff_id.as_deref()), (Some("cls-hr-k1"), Some("T-22")));
    assert_eq!(k.enrollments[0].section_id, "cls-hr-k1");
    assert_eq!(k.enrollments[1].course_type, CourseType::AsyncOnly);
    assert_eq!(s("S3002").grade_level, GradeLevel::Pk4);
    assert!(s("S2001").enrollments[1].specials);
    // No parent in the identities.
    assert!(!i.identities.iter().any(|r| r.external_id.contains("jordan")));
}

#[test]
fn without_a_date_every_row_counts() {
    let i = import(&fixture("v1p1"), &Options { as_of: None, ..opts() }).unwrap();
    let s1 = i.students.iter().find(|s| s.student_id == "S2001").unwrap();
    assert_eq!(s1.enrollments.len(), 3);
    assert_eq!(i.counts.not_in_force, 0);
}

#[test]
fn sourced_ids_on_request() {
    let o = Options { sis_id: SisId::SourcedId, identity_keys: vec![IdKey::Email], sources: vec!["zoom".into()], ..opts() };
    let i = import(&fixture("v1p1"), &o).unwrap();
    let ids: Vec<&str> = i.students.iter().map(|s| s.student_id.as_str()).collect();
    assert_eq!(ids, ["stu-1", "stu-2", "stu-3", "stu-4", "stu-5", "stu-6"]);
    assert_eq!(i.students[0].enrollments[0].staff_id, "tch-17");
    let first = &i.identities[0];
    assert_eq!((first.external_id.as_str(), first.id.as_str()), ("avery.smith@students.example.org", "stu-1"));
    // Sections always map by sourcedId.
    assert_eq!(i.identities.iter().filter(|r| r.kind == IdentityType::Section).count(), 4);
    assert!(i.identities.iter().all(|r| r.external_id.contains('@') || r.kind == IdentityType::Section));
}

#[test]
fn bad_rows_are_named_and_left_out() {
    let i = import(&fixture("bad"), &opts()).unwrap();
    assert_eq!(
        messages(&i.errors),
        [
            "classes.csv:7: column `classType`: `lab` is not one of homeroom, scheduled",
            "enrollments.csv:5: column `classSourcedId`: `cls-alg1-2` is not a class of classes.csv",
            "enrollments.csv:17: column `beginDate`: `2026-1-20` is not a date (YYYY-MM-DD)",
            "users.csv:3: column `grades`: `13` is not a grade rollcall reads (CEDS 01 to 12, KG, PK, TK, IT, PR)",
            "users.csv:6: column `enabledUser`: `yes` is not true or false",
        ]
    );
    // The rest: S2002 and S3002 are out, S3003 lost its homeroom row.
    let ids: Vec<&str> = i.students.iter().map(|s| s.student_id.as_str()).collect();
    assert_eq!(ids, ["S2001", "stu-3", "S3001", "S3003"]);
    let s3003 = &i.students[3];
    assert_eq!(s3003.homeroom_section_id, None);
    assert_eq!(s3003.enrollments.len(), 1);
}

#[test]
fn ceds_grades() {
    for (code, grade) in [
        ("01", Some(GradeLevel::G1)),
        ("1", Some(GradeLevel::G1)),
        ("09", Some(GradeLevel::G9)),
        ("12", Some(GradeLevel::G12)),
        ("KG", Some(GradeLevel::K)),
        ("PK", Some(GradeLevel::Pk4)),
        ("TK", Some(GradeLevel::Pk4)),
        ("IT", Some(GradeLevel::Ec)),
        ("PR", Some(GradeLevel::Ec)),
        ("00", None),
        ("13", None),
        ("PS", None),
        ("UG", None),
        ("Other", None),
        ("kg", None),
        ("+1", None),
        ("", None),
    ] {
        assert_eq!(grade_level(code), grade, "{code}");
    }
}

#[test]
fn the_manifest_is_checked() {
    let manifest = |v: &str, users: &str| {
        format!("propertyName,value\nmanifest.version,1.0\noneroster.version,{v}\nfile.orgs,bulk\nfile.classes,bulk\nfile.users,{users}\nfile.enrollments,bulk\nfile.courses,bulk\nfile.academicSessions,bulk\n")
    };
    assert_eq!(
        refused(&with("v1p1", &[("manifest.csv", &manifest("1.0", "bulk"))])),
        ["manifest.csv:3: column `value`: OneRoster `1.0` is not read; rollcall reads 1.1 and 1.2"]
    );
    assert_eq!(
        refused(&with("v1p1", &[("manifest.csv", &manifest("1.1", "delta"))])),
        [
            "manifest.csv:6: column `value`: users.csv is a delta file; rollcall imports bulk exports only (each student's record is replaced whole)",
            "manifest.csv: `file.users` must be `bulk`: rollcall needs users.csv",
        ]
    );
    // 1.2 needs roles.
    assert_eq!(
        refused(&with("v1p2", &[("manifest.csv", &manifest("1.2", "bulk"))])),
        ["manifest.csv: `file.roles` must be `bulk`: rollcall needs roles.csv"]
    );
    let mut missing = fixture("v1p1");
    missing.files.remove("enrollments.csv");
    assert_eq!(refused(&missing), ["enrollments.csv: missing, though the manifest lists it as bulk"]);
    let mut none = fixture("v1p1");
    none.files.remove("manifest.csv");
    assert_eq!(refused(&none), ["manifest.csv: missing: an export starts with its manifest"]);
    // Demographics listed absent are not read, even when present and wrong.
    let absent = manifest("1.1", "bulk") + "file.demographics,absent\n";
    let i = with("v1p1", &[("manifest.csv", &absent), ("demographics.csv", "nonsense\n")]);
    assert!(import(&i, &opts()).is_ok());
}

#[test]
fn headers_are_exact_and_extensions_go_last() {
    let users = String::from_utf8(fixture("v1p1").files["users.csv"].clone()).unwrap();
    let swapped = users.replacen("givenName,familyName", "familyName,givenName", 1);
    let e = refused(&with("v1p1", &[("users.csv", &swapped)]));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("users.csv:1: the header is `sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,familyName,givenName"), "{}", e[0]);
    // A 1.2 users.csv in a 1.1 export.
    let v12 = String::from_utf8(fixture("v1p2").files["users.csv"].clone()).unwrap();
    assert!(refused(&with("v1p1", &[("users.csv", &v12)]))[0].starts_with("users.csv:1: the header is"));
    // A third-party misspelling is refused rather than guessed at.
    let demo = String::from_utf8(fixture("v1p1").files["demographics.csv"].clone()).unwrap();
    let misspelt = demo.replacen("stateOfBirthAbbreviation", "stateofBirthAbbreviation", 1);
    assert!(refused(&with("v1p1", &[("demographics.csv", &misspelt)]))[0].starts_with("demographics.csv:1: the header is"));
    // metadata.* at the end is allowed (the 1.2 fixture has one); elsewhere it is not.
    let lines: Vec<&str> = users.lines().collect();
    let ext = format!("metadata.x,{}\n{}", lines[0], lines[1..].iter().map(|l| format!(",{l}\n")).collect::<String>());
    assert!(refused(&with("v1p1", &[("users.csv", &ext)]))[0].starts_with("users.csv:1: the header is"));
    let ext = format!("{},metadata.x\n{}", lines[0], lines[1..].iter().map(|l| format!("{l},1\n")).collect::<String>());
    assert_eq!(import(&with("v1p1", &[("users.csv", &ext)]), &opts()).unwrap().students, expected_students());
}

#[test]
fn each_row_error() {
    let base = fixture("v1p1");
    let text = |f: &str| String::from_utf8(base.files[f].clone()).unwrap();
    let users = text("users.csv")
        .replacen("stu-4,,,true,org-wes", "stu-4,,,true,dist-1", 1)
        .replacen("stu-5,,,true,org-wes,student", "stu-5,tobedeleted,,true,org-wes,student", 1)
        .replacen("stu-6,,,true,org-wes,student,fpatel,,", "stu-6,,,true,org-wes,pupil,fpatel,{LTI},", 1)
        .replacen("tch-31,,,true,org-lms", "tch-31,,,true,org-nope", 1);
    let orgs = text("orgs.csv") + "org-x,,,X,campus,,\norg-lms,,,Again,school,,\n";
    let enrollments = text("enrollments.csv") + "e-18,,,cls-sci-k1,dist-1,stu-1,student,maybe,,\ne-19,,,cls-sci-k1,org-wes,stu-1,learner,,,\ne-01,,,cls-sci-k1,org-wes,stu-1,student,,,\n";
    assert_eq!(
        row_errors(&with("v1p1", &[("users.csv", &users), ("orgs.csv", &orgs), ("enrollments.csv", &enrollments)])),
        [
            "enrollments.csv:19: column `schoolSourcedId`: `dist-1` is not a school of orgs.csv",
            "enrollments.csv:20: column `role`: `learner` is not one of administrator, proctor, student, teacher",
            "enrollments.csv:21: column `sourcedId`: `e-01` is listed again (first on line 2)",
            "orgs.csv:5: column `type`: `campus` is not one of department, school, district, local, state, national",
            "orgs.csv:6: column `sourcedId`: `org-lms` is listed again (first on line 3)",
            "users.csv:5: column `orgSourcedIds`: a student needs a school among orgSourcedIds",
            "users.csv:6: column `status`: `tobedeleted` belongs to delta exports; rollcall imports bulk exports",
            "users.csv:7: column `userIds`: `{LTI}` is not of the form {type:id}",
            "users.csv:7: column `role`: `pupil` is not a OneRoster 1.1 role",
            "users.csv:10: column `orgSourcedIds`: `org-nope` is not an org of orgs.csv",
        ]
    );
    let users = text("users.csv").replacen(",KG,", ",\"KG,01\",", 1).replacen(",S3003,", ",S3002,", 1);
    assert_eq!(
        row_errors(&with("v1p1", &[("users.csv", &users)])),
        [
            "users.csv:5: column `grades`: `KG,01`: a student has one grade",
            "users.csv:7: column `identifier`: student id `S3002` is already the student's on line 6",
        ]
    );
}

#[test]
fn a_class_without_a_teacher_and_a_second_homeroom() {
    let base = fixture("v1p1");
    let text = |f: &str| String::from_utf8(base.files[f].clone()).unwrap();
    let classes = text("classes.csv") + "cls-hr-k2,,,Homeroom K-2,KG,crs-hr-k1,HR-K2,homeroom,Room 4,org-wes,sy-2026,,,\ncls-club,,,Club,KG,crs-sci-k,CLUB,scheduled,,org-wes,bogus-term,,,\n";
    let enrollments = text("enrollments.csv") + "e-20,,,cls-hr-k2,org-wes,tch-22,teacher,,,\ne-21,,,cls-hr-k2,org-wes,stu-4,student,,,\ne-22,,,cls-art7-s2,org-lms,stu-2,student,,,\n";
    let enrollments = enrollments.replacen(
        "e-06,,,cls-art7-s2,org-lms,tch-17,teacher,true,,",
        "e-06,,,cls-art7-s2,org-lms,tch-17,teacher,true,2025-08-25,2026-01-17",
        1,
    );
    assert_eq!(
        row_errors(&with("v1p1", &[("classes.csv", &classes), ("enrollments.csv", &enrollments)])),
        [
            "classes.csv:8: column `termSourcedIds`: `bogus-term` is not a session of academicSessions.csv",
            "enrollments.csv:8: column `classSourcedId`: class `cls-art7-s2` has no teacher enrollment in force",
            "enrollments.csv:9: column `classSourcedId`: class `cls-art7-s2` has no teacher enrollment in force",
            "enrollments.csv:20: column `classSourcedId`: a second homeroom for the student (the first on line 15)",
            "enrollments.csv:21: column `classSourcedId`: class `cls-art7-s2` has no teacher enrollment in force",
        ]
    );
}

#[test]
fn a_bad_teacher_row_takes_its_class_without_more_errors() {
    let base = fixture("v1p1");
    let enrollments = String::from_utf8(base.files["enrollments.csv"].clone()).unwrap().replacen(
        "e-06,,,cls-art7-s2,org-lms,tch-17,teacher,true,,",
        "e-06,,,cls-art7-s2,org-lms,tch-17,teacher,yes,,",
        1,
    );
    let i = import(&with("v1p1", &[("enrollments.csv", &enrollments)]), &opts()).unwrap();
    assert_eq!(messages(&i.errors), ["enrollments.csv:7: column `primary`: `yes` is not true or false"]);
    assert!(i.students.iter().all(|s| s.enrollment("cls-art7-s2").is_none()));
}

#[test]
fn vocabulary_extensions_are_read_as_none_of_the_values() {
    let base = fixture("v1p1");
    let text = |f: &str| String::from_utf8(base.files[f].clone()).unwrap();
    let orgs = text("orgs.csv") + "org-ext,,,Region 4,ext:region,,\n";
    let classes = text("classes.csv").replacen(",ART7-S2,scheduled,", ",ART7-S2,ext:studio,", 1);
    let users = text("users.csv") + "aide-1,,,true,org-lms,ext:paraprofessional,pp,,Pat,Para,,,,,,,,\n";
    let enrollments = text("enrollments.csv") + "e-30,,,cls-art7-s2,org-lms,aide-1,ext:observer,,,\n";
    let i = import(
        &with(
            "v1p1",
            &[("orgs.csv", &orgs), ("classes.csv", &classes), ("users.csv", &users), ("enrollments.csv", &enrollments)],
        ),
        &opts(),
    )
    .unwrap();
    assert_eq!(messages(&i.errors), Vec::<String>::new());
    assert_eq!(i.students, expected_students(), "an ext: class type is a scheduled class");
    assert!(!i.identities.iter().any(|r| r.id == "aide-1"), "an ext: role is not staff");
    let bad = text("classes.csv").replacen(",ART7-S2,scheduled,", ",ART7-S2,ext:,", 1);
    assert_eq!(
        row_errors(&with("v1p1", &[("classes.csv", &bad)]))[0],
        "classes.csv:3: column `classType`: `ext:` is not one of homeroom, scheduled"
    );
}

#[test]
fn the_companions_are_checked() {
    let mut input = fixture("v1p1");
    input.sections = Some(Companion {
        name: "sections.csv".into(),
        bytes: b"section_id,course_type,specials,dual_enrollment,weekdays,start,end\n\
cls-alg1-02,LIVE,false,false,MON,09:00,09:50\n\
cls-alg1-02,ASYNC_ONLY,false,false,TUE,09:00,09:50\n\
cls-nope,LIVE,false,false,MON,09:00,09:50\n\
cls-art7-s2,HYBRID,no,false,MON,09:00,09:50\n\
cls-hr-k1,LIVE,false,false,MON MONDAY,9:00,08:50\n\
cls-hr-k1,LIVE,false,false,MON MON,09:00,09:50\n\
cls-hr-k1,LIVE,false,false,,09:00,09:50\n\
cls-sci-k1,LIVE,false,true,FRI,10:00,09:00\n"
            .to_vec(),
    });
    input.modes = Some(Companion {
        name: "modes.csv".into(),
        bytes: b"student_id,from,to,weekdays,mode\n\
S9999,2026-01-20,2026-06-11,MON,IN_PERSON\n\
S2001,2026-06-11,2026-01-20,MON,IN_PERSON\n\
S2001,2026-01-20,,MON,IN_PERSON\n\
S2001,2026-01-20,2026-06-11,,IN_PERSON\n\
S2001,2026-01-20,2026-06-11,MON,HOME\n\
S2001,2026-01-20,2026-06-11,MON\n"
            .to_vec(),
    });
    assert_eq!(
        row_errors(&input),
        [
            "modes.csv:2: column `student_id`: `S9999` is not a student of the export",
            "modes.csv:3: column `to`: 2026-01-20 is before from 2026-06-11",
            "modes.csv:4: from and to are required",
            "modes.csv:5: column `weekdays`: empty; the column is required",
            "modes.csv:6: column `mode`: unknown Mode value `HOME` (expected one of IN_PERSON, SYNC_ONLINE, ASYNC_ONLINE, ASYNC_OFFLINE, LEARNING_PACKETS)",
            "modes.csv:7: 4 fields; the header has 5",
            "sections.csv:3: course_type, specials and dual_enrollment differ from the section's first row (line 2)",
            "sections.csv:4: column `section_id`: `cls-nope` is not a class of classes.csv",
            "sections.csv:5: column `course_type`: unknown CourseType value `HYBRID` (expected one of LIVE, ASYNC_ONLY)",
            "sections.csv:6: column `weekdays`: `MONDAY` is not a weekday (MON, TUE, WED, THU, FRI, SAT, SUN)",
            "sections.csv:7: column `weekdays`: MON is listed twice",
            "sections.csv:8: column `weekdays`: empty, though start or end is given",
            "sections.csv:9: column `end`: 09:00 is not after start 10:00",
        ]
    );
    // A companion with the wrong header stops the import.
    input.modes = Some(Companion { name: "modes.csv".into(), bytes: b"student,from,to,weekdays,mode\n".to_vec() });
    let e = refused(&input);
    assert!(e[0].starts_with("modes.csv:1: the header is `student,from,to,weekdays,mode`"), "{e:?}");
}

#[test]
fn a_key_for_two_people_is_an_error() {
    let base = fixture("v1p1");
    let users = String::from_utf8(base.files["users.csv"].clone()).unwrap().replacen(
        "blake@students.example.org",
        "avery.smith@students.example.org",
        1,
    );
    let o = Options { sources: vec!["zoom".into()], ..opts() };
    let i = import(&with("v1p1", &[("users.csv", &users)]), &o).unwrap();
    assert_eq!(
        messages(&i.errors),
        [
            "users.csv:3: zoom student key `avery.smith@students.example.org` would stand for `S2002` and for `S2001` (users.csv:2)",
            "users.csv:3: zoom student key `mailto:avery.smith@students.example.org` would stand for `S2002` and for `S2001` (users.csv:2)",
        ]
    );
}

#[test]
fn roles_in_1p2() {
    let base = fixture("v1p2");
    let roles = String::from_utf8(base.files["roles.csv"].clone()).unwrap()
        + "r-13,,,stu-9,primary,student,,,org-lms,\nr-14,,,stu-1,tertiary,student,,,org-lms,\nr-15,,,stu-1,primary,pupil,,,org-nope,\nr-16,,,tch-31,primary,student,,,dist-1,\n";
    assert_eq!(
        row_errors(&with("v1p2", &[("roles.csv", &roles)])),
        [
            "roles.csv:14: column `userSourcedId`: `stu-9` is not a user of users.csv",
            "roles.csv:15: column `roleType`: `tertiary` is not primary or secondary",
            "roles.csv:16: column `role`: `pupil` is not a OneRoster 1.2 role",
            "roles.csv:16: column `orgSourcedId`: `org-nope` is not an org of orgs.csv",
            "roles.csv:17: column `orgSourcedId`: `dist-1` is not a school; a student role is held at a school",
        ]
    );
}

#[test]
fn user_ids_and_weekdays() {
    assert_eq!(user_id("{LTI:554433}").as_deref(), Some("554433"));
    assert_eq!(user_id("{a:b:c}").as_deref(), Some("b:c"));
    for bad in ["LTI:1", "{LTI}", "{:1}", "{LTI:}"] {
        assert_eq!(user_id(bad), None, "{bad}");
    }
    assert_eq!(weekdays("MON, WED  FRI").unwrap(), [Weekday::Mon, Weekday::Wed, Weekday::Fri]);
    assert_eq!(weekdays("").unwrap(), []);
    assert!(weekdays("mon").is_err());
}
