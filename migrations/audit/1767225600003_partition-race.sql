-- Up Migration

-- Two writers reaching a new month at once (the shipper writes every chain in parallel): the
-- second waits on the advisory lock while the first creates the month's partitions, but its
-- catalog lookups may not see them yet (an advisory lock does not refresh the catalog snapshot),
-- so it tried to create them again and failed with "relation already exists". A partition that
-- already exists is now simply there.
CREATE OR REPLACE FUNCTION audit.ensure_partitions(months timestamptz[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m timestamptz;
  suffix text;
  floor_at timestamptz;
  created integer := 0;
  tbl text;
BEGIN
  SELECT max(before) INTO floor_at FROM audit.retention_cuts;
  FOR m IN SELECT DISTINCT audit.month_of(x) FROM unnest(months) AS x ORDER BY 1 LOOP
    IF floor_at IS NOT NULL AND m < floor_at THEN
      RAISE EXCEPTION 'audit entries of % are before the retention floor % (those months were dropped)', to_char(m AT TIME ZONE 'UTC', 'YYYY-MM'), to_char(floor_at AT TIME ZONE 'UTC', 'YYYY-MM')
        USING ERRCODE = 'AU004';
    END IF;
    suffix := to_char(m AT TIME ZONE 'UTC', 'YYYYMM');
    CONTINUE WHEN to_regclass('audit.entries_' || suffix) IS NOT NULL AND to_regclass('audit.entry_values_' || suffix) IS NOT NULL;
    PERFORM pg_advisory_xact_lock(hashtextextended('smart-authz:audit:partitions', 0));
    FOREACH tbl IN ARRAY ARRAY['entries', 'entry_values'] LOOP
      IF to_regclass('audit.' || tbl || '_' || suffix) IS NULL THEN
        BEGIN
          EXECUTE format('CREATE TABLE audit.%I PARTITION OF audit.%I FOR VALUES FROM (%L) TO (%L)', tbl || '_' || suffix, tbl, m, m + interval '1 month');
          created := created + 1;
        EXCEPTION WHEN duplicate_table THEN
          NULL; -- created meanwhile by another writer
        END;
      END IF;
    END LOOP;
  END LOOP;
  RETURN created;
END $$;
REVOKE ALL ON FUNCTION audit.ensure_partitions(timestamptz[]) FROM PUBLIC;

-- Down Migration
