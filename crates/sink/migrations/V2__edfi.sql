-- `rollcall sink edfi`: what it posted to an Ed-Fi ODS/API, what the API
-- refused, and where its pass over `determinations` stands.

-- One row per API (its base URL) and determination key (the key of
-- `determinations`): the document last sent there for it. `state` is
-- 'posting' from just before the POST until the API answered, 'posted' once
-- it accepted it, 'refused' when it answered with a 4xx (the answer is in
-- edfi_refusals). A restart finding 'posting' asks the API (GET by natural
-- key) before posting again.
CREATE TABLE edfi_posted (
    base_url text NOT NULL,
    student_id text NOT NULL,
    scope text NOT NULL,
    date date NOT NULL,
    section_key text NOT NULL,
    determination_id text NOT NULL,
    resource text NOT NULL,
    natural_key text NOT NULL,
    category text NOT NULL,
    document_hash text NOT NULL,
    resource_id text,
    location text,
    state text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (base_url, student_id, scope, date, section_key)
);

-- Every answer of the API that refused a document (4xx other than 401 and
-- 429), with the API's own problem-details body.
CREATE TABLE edfi_refusals (
    refusal_id bigserial PRIMARY KEY,
    base_url text NOT NULL,
    student_id text NOT NULL,
    scope text NOT NULL,
    date date NOT NULL,
    section_key text NOT NULL,
    determination_id text NOT NULL,
    resource text NOT NULL,
    method text NOT NULL,
    status integer NOT NULL,
    message text NOT NULL,
    body text NOT NULL,
    refused_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX edfi_refusals_key ON edfi_refusals (student_id, scope, date, section_key);

-- Where the current pass over `determinations` stands (the last key done),
-- per Ed-Fi base URL; NULL columns: at the start of a pass.
CREATE TABLE edfi_cursor (
    base_url text PRIMARY KEY,
    student_id text,
    scope text,
    date date,
    section_key text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
