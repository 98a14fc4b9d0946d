//! Bad input gets a clear error that names the file, the place and the
//! problem, and nothing else breaks.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::harness::Area;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn base() -> Value {
    let f = repo().join("tests/scenarios/mmsd-01-k5-live-join-and-submission.json");
    serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
}

/// Writes the scenario and runs `rollcall scenario check` on it: (exit code, stdout).
fn check(name: &str, v: &Value) -> (Option<i32>, String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, serde_json::to_string_pretty(v).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall")).args(["scenario", "check", "--memory"]).arg(&path).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), path, dir)
}

fn misspelt_field_names_file_event_and_field() {
    let mut v = base();
    let e = v["events"][2].as_object_mut().unwrap();
    let t = e.remove("occurred_at").unwrap();
    e.insert("occured_at".into(), t);
    let (code, out, path, _d) = check("misspelt.json", &v);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&path.display().to_string()), "{out}");
    assert!(out.contains("events[2]") && out.contains("unknown field `occured_at`"), "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

fn unknown_enum_value_is_named() {
    let mut v = base();
    v["events"][0]["kind"] = json!("LOGGED_IN");
    let (code, out, _, _d) = check("enum.json", &v);
    assert_eq!(code, Some(1));
    assert!(out.contains("events[0]") && out.contains("LOGGED_IN") && out.contains("LIVE_JOIN"), "{out}");
}

fn nonexistent_timezone_is_named() {
    let mut v = base();
    v["calendars"][0]["timezone"] = json!("America/Atlantis");
    let (code, out, _, _d) = check("tz.json", &v);
    assert_eq!(code, Some(1));
    assert!(out.contains("calendars[0]") && out.contains("America/Atlantis") && out.contains("IANA"), "{out}");
}

fn syntax_error_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{\n  \"name\": \"x\",\n  \"policy\": mmsd\n}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall")).args(["scenario", "check"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("broken.json: line 3, column"), "{text}");
}

fn event_for_unknown_student_waits_then_is_refused_and_the_rest_still_counts() {
    let mut v = base();
    let mut stray = v["events"][0].clone();
    stray["event_id"] = json!("stray-1");
    stray["student_id"] = json!("nobody");
    v["events"].as_array_mut().unwrap().insert(1, stray);
    // Within its wait (three days) the event waits for a roster record: nothing is refused yet.
    let (code, out, _, _d) = check("stray-waiting.json", &v);
    assert_eq!(code, Some(0), "{out}");
    // Past it, it is refused, with the place it had in the file.
    v["now"] = json!("2020-10-09T00:00:00Z");
    let (code, out, _, _d) = check("stray.json", &v);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("events[1] (stray-1)") && out.contains("UNKNOWN_STUDENT") && out.contains("`nobody`"), "{out}");
    assert!(out.contains("waited from 2020-10-05T13:05:00+00:00"), "{out}");
    // Only the refusal differs: every determination still came out as expected.
    assert_eq!(out.lines().filter(|l| l.contains("expected")).count(), 1, "{out}");

    // Declared as expected, the scenario passes.
    v["expect"]["dead_letters"] = json!([{ "event_id": "stray-1", "error_kind": "UNKNOWN_STUDENT" }]);
    let (code, out, _, _d) = check("stray-expected.json", &v);
    assert_eq!(code, Some(0), "{out}");
}

fn absurd_timestamp_is_refused() {
    let mut v = base();
    let mut far = v["events"][0].clone();
    far["event_id"] = json!("far-1");
    far["occurred_at"] = json!("2031-01-01T00:00:00Z");
    // It arrives in 2020 with the others, claiming to come from 2031.
    let last = v["events"].as_array().unwrap().last().unwrap().clone();
    far["arrives_at"] = last.get("arrives_at").cloned().unwrap_or(last["occurred_at"].clone());
    v["events"].as_array_mut().unwrap().push(far);
    v["expect"]["dead_letters"] = json!([{ "event_id": "far-1", "error_kind": "TIMESTAMP_OUT_OF_RANGE" }]);
    let (code, out, _, _d) = check("far.json", &v);
    assert_eq!(code, Some(0), "{out}");
}

fn policy_file_with_wrong_field_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("district.toml");
    let text = rollcall_policy::Policy::preset_text("cms").unwrap().replace("hardship_reasons", "hardship_reason");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall")).args(["policy", "check"]).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("district.toml") && err.contains("line") && err.contains("hardship_reason"), "{err}");
}

fn policy_file_with_unknown_reason_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("district.toml");
    let text = rollcall_policy::Policy::preset_text("cms").unwrap().replace("\"CONNECTIVITY\"", "\"WIFI\"");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall")).args(["policy", "check"]).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("district.toml") && err.contains("WIFI"), "{err}");
}

fn shipped_presets_check_clean() {
    for id in rollcall_policy::PRESET_IDS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{id}.toml"));
        let out = Command::new(env!("CARGO_BIN_EXE_rollcall")).args(["policy", "show", id]).output().unwrap();
        std::fs::write(&path, &out.stdout).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_rollcall")).args(["policy", "check"]).arg(&path).output().unwrap();
        assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn rollcall(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall")).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn an_out_of_range_year_names_its_field() {
    let mut v = base();
    v["events"][1]["occurred_at"] = json!("+275760-01-01T00:00:00Z");
    v["calendars"][0]["days"][0]["date"] = json!("99999-10-05");
    let (code, out, _, _d) = check("far.json", &v);
    assert_eq!(code, Some(1), "{out}");
    // The calendar is read first: its field is the one named.
    assert!(out.contains("calendars[0].days[0].date:"), "{out}");
    let mut v = base();
    v["events"][1]["occurred_at"] = json!("+275760-01-01T00:00:00Z");
    let (_, out, _, _d) = check("far.json", &v);
    assert!(out.contains("events[1].occurred_at: input is out of range"), "{out}");
}

fn a_scenario_with_a_byte_order_mark_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bom.json");
    std::fs::write(&path, format!("\u{feff}{}", serde_json::to_string_pretty(&base()).unwrap())).unwrap();
    let (code, out, err) = rollcall(&["scenario", "check", "--memory", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");
}

fn an_empty_scenario_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = rollcall(&["scenario", "check", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("no scenario files") && err.contains(&dir.path().display().to_string()), "{err}");
}

fn a_missing_file_says_its_os_error_once() {
    let (code, _, err) = rollcall(&["policy", "check", "/nonexistent/district.toml"]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    let (code, out, _) = rollcall(&["scenario", "check", "/nonexistent/s.json"]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.matches("No such file").count(), 1, "{out}");
}

fn policy_show_says_to_change_the_id_and_checks_clean() {
    let (code, out, _) = rollcall(&["policy", "show", "cms"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("# The `cms` preset. To make a district policy of it, give it an id of its own"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("district.toml");
    std::fs::write(&path, out.replace("id = \"cms\"", "id = \"cms-district\"")).unwrap();
    let (code, out, err) = rollcall(&["policy", "check", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("policy `cms-district`"), "{out}");
}

fn policy_check_refuses_codes_an_sis_could_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let cms = rollcall(&["policy", "show", "cms"]).1.replace("id = \"cms\"", "id = \"d\"");
    for (from, to, want) in [
        ("absent_unexcused = \"AU\"", "absent_unexcused = \"\"", "codes.absent_unexcused: must not be empty"),
        ("present_remote = \"1R\"", "present_remote = \"P\"", "codes.present_remote: is `P`, the same code as codes.present"),
    ] {
        let path = dir.path().join("d.toml");
        std::fs::write(&path, cms.replace(from, to)).unwrap();
        let (code, _, err) = rollcall(&["policy", "check", path.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{to}: {err}");
        assert!(err.contains(want) && err.contains("d.toml"), "{to}: {err}");
    }
}

fn a_mistake_in_the_rule_table_points_at_its_line_on_lines_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let text = rollcall(&["policy", "show", "cms"]).1.replace("fraction = 0.5", "fraction = \"half\"");
    let line = text.lines().position(|l| l.contains("fraction = \"half\"")).unwrap() + 1;
    let path = dir.path().join("d.toml");
    std::fs::write(&path, text).unwrap();
    let (code, _, err) = rollcall(&["policy", "check", path.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("line {line}")) && err.lines().count() > 2, "{err}");
}

/// Nothing to set up: these run on the runner's thread pool.
pub fn area() -> Area {
    Area::plain(
        "bad_input",
        plain_tests![
            misspelt_field_names_file_event_and_field,
            unknown_enum_value_is_named,
            nonexistent_timezone_is_named,
            syntax_error_names_line_and_column,
            event_for_unknown_student_waits_then_is_refused_and_the_rest_still_counts,
            absurd_timestamp_is_refused,
            policy_file_with_wrong_field_names_file_line_and_field,
            policy_file_with_unknown_reason_is_named,
            shipped_presets_check_clean,
            an_out_of_range_year_names_its_field,
            a_scenario_with_a_byte_order_mark_is_read,
            an_empty_scenario_directory_is_an_error,
            a_missing_file_says_its_os_error_once,
            policy_show_says_to_change_the_id_and_checks_clean,
            policy_check_refuses_codes_an_sis_could_not_use,
            a_mistake_in_the_rule_table_points_at_its_line_on_lines_of_its_own,
        ],
    )
}
