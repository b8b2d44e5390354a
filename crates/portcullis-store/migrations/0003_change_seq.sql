-- Portcullis store, schema version 3: which lifecycle transaction last changed a key or an
-- identity (the change counter's value after it), so that a running gateway re-reads only the
-- rows that changed instead of every key. Rows written before this version keep 0: gateways
-- read every key when they start.
ALTER TABLE api_keys ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX api_keys_change_seq ON api_keys (change_seq);
ALTER TABLE identities ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX identities_change_seq ON identities (change_seq);
