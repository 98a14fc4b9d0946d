//! Answers read from the tables `rollcall sink postgres` keeps: why a
//! student's determination is what it is ([`explain`]), and a student's
//! attendance over a range of dates ([`attendance`]).
//!
//! This crate owns the reading side of the SIS tables for people: the
//! queries, the answers as serde values (the JSON that `rollcall serve`
//! gives) and their plain-text form (what `rollcall explain` prints). It
//! reads only; the sink owns the schema and the writes. A school's day
//! ([`school_day`]) and the list of schools are here too, for the pages.
//!
//! Everything explain shows travels on the determination records
//! themselves (`evidence_detail`, `looked_for`, `seen`, added to the Avro
//! schema in version 2): the engine writes them when it emits, from the
//! facts it decided with, so no raw event has to be kept for explain.

pub mod attendance;
pub mod explain;
pub mod school;
pub mod text;

pub use attendance::{attendance, AttendanceDay};
pub use explain::{explain, Explained, Explanation, VersionView};
pub use school::{school_day, schools, SchoolDay};

/// Why a question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Neither the roster nor any determination knows the student.
    #[error("student {0} is not known to this database (no roster record and no determination)")]
    UnknownStudent(String),
    /// The school is not in the `schools` table.
    #[error("school {0} is not known to this database")]
    UnknownSchool(String),
    /// The student is known, but nothing was decided for them then.
    #[error("no determination for student {student} on {date}{section}: not a school day for them, or not decided yet")]
    NoDetermination { student: String, date: chrono::NaiveDate, section: String },
    #[error("database: {what}: {source}")]
    Db {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A stored value this program cannot read (a column written by hand).
    #[error("{what}: {message}")]
    Corrupt { what: String, message: String },
}

impl QueryError {
    pub(crate) fn db(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> QueryError {
        let what = what.into();
        move |source| QueryError::Db { what, source }
    }

    /// Whether the question named something that is not there (HTTP 404),
    /// rather than the database failing (HTTP 500).
    pub fn is_not_found(&self) -> bool {
        matches!(self, QueryError::UnknownStudent(_) | QueryError::UnknownSchool(_) | QueryError::NoDetermination { .. })
    }
}

/// Whether the roster or any determination knows the student.
pub(crate) async fn student_known(client: &tokio_postgres::Client, student: &str) -> Result<bool, QueryError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM students WHERE student_id = $1)
                 OR EXISTS (SELECT 1 FROM determinations WHERE student_id = $1)",
            &[&student],
        )
        .await
        .map_err(QueryError::db("looking the student up"))?;
    Ok(row.get(0))
}
