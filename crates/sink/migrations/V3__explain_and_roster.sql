-- What explain and the reports read besides the codes: each determination's
-- evidence in detail and, for an absence, what its rule looked for and the
-- activity it saw that did not count (the Avro fields `evidence_detail`,
-- `looked_for` and `seen`, added with defaults, so older records read as
-- empty); and the roster and calendars the processor decided with, so that
-- a report can group students and show local times.

ALTER TABLE determination_versions
    ADD COLUMN evidence_detail jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN looked_for text[] NOT NULL DEFAULT '{}',
    ADD COLUMN seen jsonb NOT NULL DEFAULT '[]';
ALTER TABLE determinations
    ADD COLUMN evidence_detail jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN looked_for text[] NOT NULL DEFAULT '{}',
    ADD COLUMN seen jsonb NOT NULL DEFAULT '[]';

-- The latest StudentRecord per student (sis.roster.v1), the fields a report
-- groups by; enrollments as their section ids.
CREATE TABLE students (
    student_id text PRIMARY KEY,
    school_id text NOT NULL,
    grade_level text NOT NULL,
    homeroom_section_id text,
    homeroom_staff_id text,
    groups text[] NOT NULL,
    section_ids text[] NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX students_school ON students (school_id);

-- The latest SchoolCalendar per school (sis.calendars.v1), without its days.
CREATE TABLE schools (
    school_id text PRIMARY KEY,
    timezone text NOT NULL,
    policy text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A school's days from its calendar: what a monthly report counts as a
-- school day, and the minutes it offered.
CREATE TABLE school_days (
    school_id text NOT NULL,
    date date NOT NULL,
    instructional boolean NOT NULL,
    day_type text NOT NULL,
    minutes integer NOT NULL,
    PRIMARY KEY (school_id, date)
);
