-- Portcullis store, schema version 2: per-identity rate-limit and quota overrides, and the
-- quota counters gateways share. One text for SQLite and PostgreSQL (see 0001).

-- Same syntax as the key overrides (`100/s`, `1000/day`); NULL: the route's limits apply.
ALTER TABLE identities ADD COLUMN rate_limit_override TEXT;
ALTER TABLE identities ADD COLUMN quota_override TEXT;

-- Requests counted per quota bucket and calendar window (window_start: Unix milliseconds,
-- UTC). Gateways add their counts in batches (`used = used + delta`, atomic in the database)
-- and read back the totals, which include every other gateway's counts.
CREATE TABLE quota_usage (
    bucket          TEXT    NOT NULL,
    window_start    BIGINT  NOT NULL,
    used            BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
-- Loading the current windows at start and pruning old ones select on window_start alone.
CREATE INDEX quota_usage_window ON quota_usage (window_start);
