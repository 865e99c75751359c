-- Up Migration

-- Retention that keeps disclosures for their longer period (docs/audit-postgres.md "Retention").
-- When `smart-authz audit purge` drops a month of audit.entries (general retention), the
-- disclosure events of that month (those with a `disclosure=` search value: disclosedPatients()
-- non-empty) are first copied here byte for byte (chain, seq, t, prev, hash, id, event), with
-- their search values, so each still recomputes to its own hash and search, read by id, the
-- disclosure report and export still find them. A month of kept entries is dropped in its turn
-- once it is past the disclosure retention. What each drop kept is signed in a `retention-cut`
-- checkpoint (a digest over the kept entries of the dropped range), which verify checks.
CREATE TABLE audit.kept (
  chain text NOT NULL CHECK (chain <> '' AND length(chain) <= 64),
  seq bigint NOT NULL CHECK (seq > 0),
  t timestamptz NOT NULL,
  prev bytea NOT NULL CHECK (length(prev) = 32),
  hash bytea NOT NULL CHECK (length(hash) = 32),
  id text NOT NULL,
  event text NOT NULL,
  PRIMARY KEY (chain, seq, t)
) PARTITION BY RANGE (t);
ALTER TABLE audit.kept ALTER COLUMN event SET COMPRESSION lz4;
CREATE INDEX kept_t ON audit.kept (t, chain, seq);
CREATE INDEX kept_id ON audit.kept (id);

CREATE TABLE audit.kept_values (
  term text NOT NULL,
  t timestamptz NOT NULL,
  chain text NOT NULL,
  seq bigint NOT NULL
) PARTITION BY RANGE (t);
CREATE INDEX kept_values_term ON audit.kept_values (term, t, chain, seq);

CREATE TRIGGER kept_append_only BEFORE UPDATE OR DELETE ON audit.kept FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER kept_values_append_only BEFORE UPDATE OR DELETE ON audit.kept_values FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();

-- The unsigned whole-month drop is gone: it took disclosures with everything else and its cut
-- record was not signed. Retention is `smart-authz audit purge` (src/audit/pg/retention.ts).
DROP FUNCTION audit.drop_partitions_before(timestamptz);

CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only: % on %.% is refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'AU005', HINT = 'retention drops whole months: smart-authz audit purge, as the owner role';
END $$;

-- Down Migration

DROP TABLE audit.kept_values;
DROP TABLE audit.kept;
