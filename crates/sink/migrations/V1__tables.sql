-- The sink's tables (crates/sink): determinations and outreach as the SIS
-- reads them, and the Kafka positions they reflect. Columns are named as the
-- fields of the Avro records (schemas/determination.avsc,
-- schemas/outreach_trigger.avsc); enums are their symbols as text.

-- Every version of every determination, as it was emitted.
CREATE TABLE determination_versions (
    determination_id text PRIMARY KEY,
    student_id text NOT NULL,
    school_id text NOT NULL,
    scope text NOT NULL,
    date date NOT NULL,
    section_id text,
    policy text NOT NULL,
    status text NOT NULL,
    code text NOT NULL,
    attendance_type text,
    minutes bigint,
    contacts integer,
    category text,
    rule text NOT NULL,
    evidence text[] NOT NULL,
    version integer NOT NULL,
    finality text NOT NULL,
    decided_at timestamptz NOT NULL
);
CREATE INDEX determination_versions_key ON determination_versions (student_id, scope, date, section_id, version);

-- The latest version per key (student_id, scope, date, section or '').
-- A primary key column cannot be NULL, and DAY determinations have no
-- section: section_key is the section, or '' for none.
CREATE TABLE determinations (
    determination_id text NOT NULL,
    student_id text NOT NULL,
    school_id text NOT NULL,
    scope text NOT NULL,
    date date NOT NULL,
    section_id text,
    policy text NOT NULL,
    status text NOT NULL,
    code text NOT NULL,
    attendance_type text,
    minutes bigint,
    contacts integer,
    category text,
    rule text NOT NULL,
    evidence text[] NOT NULL,
    version integer NOT NULL,
    finality text NOT NULL,
    decided_at timestamptz NOT NULL,
    section_key text GENERATED ALWAYS AS (coalesce(section_id, '')) STORED,
    PRIMARY KEY (student_id, scope, date, section_key)
);
-- What an SIS import asks for: a school's days.
CREATE INDEX determinations_school_date ON determinations (school_id, date);

CREATE TABLE outreach_triggers (
    trigger_id text PRIMARY KEY,
    student_id text NOT NULL,
    school_id text NOT NULL,
    kind text NOT NULL,
    recipient_role text NOT NULL,
    staff_id text,
    section_id text,
    window_start date NOT NULL,
    window_end date NOT NULL,
    reason text NOT NULL,
    evidence text[] NOT NULL,
    policy text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX outreach_triggers_school_created ON outreach_triggers (school_id, created_at);

-- The next Kafka offset to read per partition, written in the same
-- transaction as the rows of each batch: the rows and the positions never
-- disagree, whenever the sink stops.
CREATE TABLE sink_offsets (
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- Records the sink could not use, with their origin and bytes (the fields
-- of schemas/dead_letter.avsc), written in their batch's transaction.
CREATE TABLE sink_dead_letters (
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    key text,
    value bytea,
    error_kind text NOT NULL,
    message text NOT NULL,
    failed_at timestamptz NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
