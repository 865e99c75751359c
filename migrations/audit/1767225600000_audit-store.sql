-- Up Migration

-- The audit trail's long-term home (docs/audit-postgres.md). Everything lives in schema `audit`;
-- the application role gets USAGE, SELECT and INSERT (src/audit/pg/migrate.ts grants them), never
-- UPDATE, DELETE or TRUNCATE. Retention drops whole month partitions as the owner role.

REVOKE ALL ON SCHEMA audit FROM PUBLIC;

-- One row per chain entry. `t` is the trail time (ms in Redis; exact here, timestamptz has µs),
-- the partition key. `prev` and `hash` are the SHA-256 values as bytes (32 instead of 64 hex
-- characters each). `event` is the canonical JSON text byte for byte: the hash covers it.
CREATE TABLE audit.entries (
  chain text NOT NULL CHECK (chain <> '' AND length(chain) <= 64),
  seq bigint NOT NULL CHECK (seq > 0),
  t timestamptz NOT NULL,
  prev bytea NOT NULL CHECK (length(prev) = 32),
  hash bytea NOT NULL CHECK (length(hash) = 32),
  id text NOT NULL,
  event text NOT NULL,
  -- A partitioned table's unique keys must contain the partition key; (chain, seq) alone is kept
  -- unique by audit.insert_entries (under a per-chain lock), not by this key.
  PRIMARY KEY (chain, seq, t)
) PARTITION BY RANGE (t);
ALTER TABLE audit.entries ALTER COLUMN event SET COMPRESSION lz4;
-- No-filter search and date ranges: newest first, in (t, chain, seq) order, counted index-only.
CREATE INDEX entries_t ON audit.entries (t, chain, seq);
-- Read by id.
CREATE INDEX entries_id ON audit.entries (id);

-- Search values (src/audit/indexes.ts), one row per (entry, `param=value`): a B-tree on
-- (term, t, chain, seq) gives any one value's matches in time order and counts them index-only.
CREATE TABLE audit.entry_values (
  term text NOT NULL,
  t timestamptz NOT NULL,
  chain text NOT NULL,
  seq bigint NOT NULL
) PARTITION BY RANGE (t);
CREATE INDEX entry_values_term ON audit.entry_values (term, t, chain, seq);

-- Signed checkpoints (compact JWS, src/audit/checkpoints.ts), with the signed fields copied out
-- unverified for joins; verify checks the signature itself.
CREATE TABLE audit.checkpoints (
  chain text NOT NULL,
  seq bigint NOT NULL CHECK (seq >= 0),
  hash bytea NOT NULL CHECK (length(hash) = 32),
  iat bigint NOT NULL,
  reason text NOT NULL,
  jws text NOT NULL,
  PRIMARY KEY (chain, seq, jws)
);

-- Where retention cut each chain: the last (seq, hash) dropped, so verify can start the chain
-- after it. Written only by audit.drop_partitions_before (owner).
CREATE TABLE audit.retention_cuts (
  chain text NOT NULL,
  seq bigint NOT NULL,
  hash bytea NOT NULL,
  before timestamptz NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (chain, before)
);

-- Belt and braces beside the grants: no role, not even the owner by mistake, updates or deletes
-- rows. Retention detaches and drops partitions, which fires no row trigger.
CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only: % on %.% is refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'AU005', HINT = 'retention drops whole months: audit.drop_partitions_before, as the owner role';
END $$;
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON audit.entries FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER entry_values_append_only BEFORE UPDATE OR DELETE ON audit.entry_values FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON audit.checkpoints FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER retention_cuts_append_only BEFORE UPDATE OR DELETE ON audit.retention_cuts FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON audit.checkpoints FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER retention_cuts_no_truncate BEFORE TRUNCATE ON audit.retention_cuts FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- First instant of the UTC month of `t`.
CREATE FUNCTION audit.month_of(t timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN date_trunc('month', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';

CREATE FUNCTION audit.ms_to_ts(ms bigint) RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN timestamptz '1970-01-01 00:00:00+00' + ms * interval '1 millisecond';

CREATE FUNCTION audit.ts_to_ms(t timestamptz) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN floor(extract(epoch FROM t) * 1000)::bigint;

-- Creates the month partitions of both partitioned tables for these months (any instant in the
-- month will do) unless they exist. SECURITY DEFINER: only a table's owner may add partitions,
-- and the application role must be able to write a new month. There is no default partition:
-- a row of a month without one is refused loudly instead of landing where retention cannot drop
-- it by month (and a default partition would have to be scanned whenever a month is added).
-- A month before the retention floor is refused: it was dropped on purpose.
CREATE FUNCTION audit.ensure_partitions(months timestamptz[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m timestamptz;
  suffix text;
  floor_at timestamptz;
  created integer := 0;
BEGIN
  SELECT max(before) INTO floor_at FROM audit.retention_cuts;
  FOR m IN SELECT DISTINCT audit.month_of(x) FROM unnest(months) AS x ORDER BY 1 LOOP
    IF floor_at IS NOT NULL AND m < floor_at THEN
      RAISE EXCEPTION 'audit entries of % are before the retention floor % (those months were dropped)', to_char(m AT TIME ZONE 'UTC', 'YYYY-MM'), to_char(floor_at AT TIME ZONE 'UTC', 'YYYY-MM')
        USING ERRCODE = 'AU004';
    END IF;
    suffix := to_char(m AT TIME ZONE 'UTC', 'YYYYMM');
    CONTINUE WHEN to_regclass('audit.entries_' || suffix) IS NOT NULL AND to_regclass('audit.entry_values_' || suffix) IS NOT NULL;
    -- Two instances may reach a new month at once: one creates, the other waits and finds it.
    PERFORM pg_advisory_xact_lock(hashtextextended('smart-authz:audit:partitions', 0));
    IF to_regclass('audit.entries_' || suffix) IS NULL THEN
      EXECUTE format('CREATE TABLE audit.%I PARTITION OF audit.entries FOR VALUES FROM (%L) TO (%L)', 'entries_' || suffix, m, m + interval '1 month');
      created := created + 1;
    END IF;
    IF to_regclass('audit.entry_values_' || suffix) IS NULL THEN
      EXECUTE format('CREATE TABLE audit.%I PARTITION OF audit.entry_values FOR VALUES FROM (%L) TO (%L)', 'entry_values_' || suffix, m, m + interval '1 month');
      created := created + 1;
    END IF;
  END LOOP;
  RETURN created;
END $$;
REVOKE ALL ON FUNCTION audit.ensure_partitions(timestamptz[]) FROM PUBLIC;

-- Appends a batch of entries (arrays of equal length; hashes as hex) and their search values
-- (term_entry: 1-based index of the entry each term belongs to). One call per batch. Idempotent
-- by (chain, seq): an entry already stored identically is skipped; a DIFFERENT entry at a stored
-- (chain, seq) is an error (AU002), as is an entry whose hash is not sha256(seq, prev, event)
-- (AU001) or that does not link to its stored or batched neighbours (AU003). Runs with the
-- caller's rights (INSERT), and takes a per-chain lock so two writers cannot both add a seq.
-- Returns how many entries were new.
CREATE FUNCTION audit.insert_entries(
  chains text[], seqs bigint[], prevs text[], hashes text[], ids text[], events text[], ts bigint[],
  term_entry integer[], terms text[]
) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer := coalesce(cardinality(seqs), 0);
  bad record;
  inserted integer;
  lo bigint;
  hi bigint;
BEGIN
  IF n = 0 THEN RETURN 0; END IF;
  IF cardinality(chains) <> n OR cardinality(prevs) <> n OR cardinality(hashes) <> n OR cardinality(ids) <> n
     OR cardinality(events) <> n OR cardinality(ts) <> n OR coalesce(cardinality(term_entry), 0) <> coalesce(cardinality(terms), 0) THEN
    RAISE EXCEPTION 'audit.insert_entries: the arrays differ in length' USING ERRCODE = '22023';
  END IF;
  SELECT min(s), max(s) INTO lo, hi FROM unnest(seqs) AS s;

  -- The hash must cover what is stored (entryHash in src/audit/chain.ts).
  SELECT i.chain, i.seq INTO bad FROM unnest(chains, seqs, prevs, hashes, events) AS i(chain, seq, prev, hash, event)
   WHERE i.hash IS DISTINCT FROM encode(sha256(convert_to(i.seq::text || E'\n' || i.prev || E'\n' || i.event, 'UTF8')), 'hex')
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'audit entry %#% does not match its hash', bad.chain, bad.seq USING ERRCODE = 'AU001';
  END IF;

  -- Months of the batch's days (a batch spans a few days at most: one month_of per day, not per entry).
  PERFORM audit.ensure_partitions(ARRAY(SELECT audit.month_of(audit.ms_to_ts(d * 86400000)) FROM (SELECT DISTINCT x / 86400000 AS d FROM unnest(ts) AS x) AS days));
  PERFORM pg_advisory_xact_lock(hashtextextended('smart-authz:audit:chain:' || c, 0))
     FROM (SELECT DISTINCT c FROM unnest(chains) AS c ORDER BY c) AS s;

  -- The same (chain, seq) twice in the batch, differently.
  SELECT i.chain, i.seq INTO bad FROM unnest(chains, seqs, hashes, ids, ts) AS i(chain, seq, hash, id, t)
   GROUP BY i.chain, i.seq HAVING count(DISTINCT (i.hash, i.id, i.t)) > 1 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the batch holds two different audit entries at %#%', bad.chain, bad.seq USING ERRCODE = 'AU002';
  END IF;

  -- A different entry already stored at the same (chain, seq): tampering or a bug, never a retry.
  SELECT e.chain, e.seq INTO bad
    FROM unnest(chains, seqs, hashes, ids, ts) AS i(chain, seq, hash, id, t)
    JOIN audit.entries e ON e.chain = i.chain AND e.seq = i.seq
   WHERE e.chain = ANY (chains) AND e.seq BETWEEN lo AND hi
     AND (e.hash <> decode(i.hash, 'hex') OR e.id <> i.id OR e.t <> audit.ms_to_ts(i.t))
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'a different audit entry is already stored at %#%', bad.chain, bad.seq USING ERRCODE = 'AU002';
  END IF;

  -- Links: to the entry before (in the batch or stored; the genesis for seq 1) and from the entry
  -- after; trail time never goes back along a chain.
  WITH i AS (SELECT * FROM unnest(chains, seqs, prevs, hashes, ts) AS x(chain, seq, prev, hash, t)),
  before AS (
    SELECT i.chain, i.seq, i.prev, i.t, coalesce(b.hash, encode(s.hash, 'hex')) AS bhash, coalesce(b.t, audit.ts_to_ms(s.t)) AS bt
      FROM i
      LEFT JOIN i b ON b.chain = i.chain AND b.seq = i.seq - 1
      LEFT JOIN audit.entries s ON b.seq IS NULL AND s.chain = i.chain AND s.seq = i.seq - 1
  ),
  after AS (
    SELECT i.chain, i.seq, i.hash, i.t, encode(s.prev, 'hex') AS aprev, audit.ts_to_ms(s.t) AS at
      FROM i
      JOIN audit.entries s ON s.chain = i.chain AND s.seq = i.seq + 1
     WHERE NOT EXISTS (SELECT 1 FROM i a WHERE a.chain = i.chain AND a.seq = i.seq + 1)
  )
  SELECT chain, seq INTO bad FROM (
    SELECT chain, seq FROM before
     WHERE (seq = 1 AND prev <> repeat('0', 64)) OR (bhash IS NOT NULL AND (bhash <> prev OR bt > t))
    UNION ALL
    SELECT chain, seq + 1 FROM after WHERE aprev <> hash OR at < t
  ) AS broken ORDER BY chain, seq LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'audit entry %#% does not link to the entry before it', bad.chain, bad.seq USING ERRCODE = 'AU003';
  END IF;

  WITH i AS (
    SELECT DISTINCT ON (x.chain, x.seq) x.* FROM unnest(chains, seqs, prevs, hashes, ids, events, ts) WITH ORDINALITY
      AS x(chain, seq, prev, hash, id, event, t, ord)
     ORDER BY x.chain, x.seq, x.ord
  ),
  ins AS (
    INSERT INTO audit.entries (chain, seq, t, prev, hash, id, event)
    SELECT i.chain, i.seq, audit.ms_to_ts(i.t), decode(i.prev, 'hex'), decode(i.hash, 'hex'), i.id, i.event
      FROM i
     WHERE NOT EXISTS (SELECT 1 FROM audit.entries e WHERE e.chain = i.chain AND e.seq = i.seq AND e.chain = ANY (chains) AND e.seq BETWEEN lo AND hi)
    -- No ON CONFLICT: the chain lock makes the NOT EXISTS exact, and a plain insert skips the
    -- speculative insertion ON CONFLICT costs per row.
    RETURNING chain, seq, t
  ),
  vals AS (
    INSERT INTO audit.entry_values (term, t, chain, seq)
    SELECT DISTINCT v.term, ins.t, ins.chain, ins.seq
      FROM unnest(term_entry, terms) AS v(entry, term)
      JOIN unnest(chains, seqs) WITH ORDINALITY AS x(chain, seq, ord) ON x.ord = v.entry
      JOIN ins ON ins.chain = x.chain AND ins.seq = x.seq
  )
  SELECT count(*) INTO inserted FROM ins;
  RETURN inserted;
END $$;

-- Retention (owner only): drops the month partitions wholly before `before` (first instant of a
-- UTC month), after writing each chain's cut (the last entry dropped) so verify starts after it.
-- Returns the names of the dropped partitions.
CREATE FUNCTION audit.drop_partitions_before(before timestamptz) RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p record;
BEGIN
  IF before <> audit.month_of(before) THEN
    RAISE EXCEPTION 'retention drops whole months: % is not the first instant of a UTC month', before USING ERRCODE = '22023';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended('smart-authz:audit:partitions', 0));
  INSERT INTO audit.retention_cuts (chain, seq, hash, before)
  SELECT DISTINCT ON (chain) chain, seq, hash, before FROM audit.entries WHERE t < before ORDER BY chain, seq DESC
  ON CONFLICT DO NOTHING;
  FOR p IN
    SELECT c.relname, parent.relname AS parent
      FROM pg_inherits h
      JOIN pg_class c ON c.oid = h.inhrelid
      JOIN pg_class parent ON parent.oid = h.inhparent
      JOIN pg_namespace ns ON ns.oid = parent.relnamespace
     WHERE ns.nspname = 'audit' AND parent.relname IN ('entries', 'entry_values')
       AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz <= before
     ORDER BY c.relname
  LOOP
    EXECUTE format('ALTER TABLE audit.%I DETACH PARTITION audit.%I', p.parent, p.relname);
    EXECUTE format('DROP TABLE audit.%I', p.relname);
    RETURN NEXT p.relname;
  END LOOP;
END $$;
REVOKE ALL ON FUNCTION audit.drop_partitions_before(timestamptz) FROM PUBLIC;

-- Down Migration
DROP SCHEMA audit CASCADE;
