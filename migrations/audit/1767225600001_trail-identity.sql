-- Up Migration

-- Which trail this database holds: the id the Redis intake carries ({audit}:trail-id). A server
-- whose Redis carries another id (another deployment, another key prefix, a Redis that lost its
-- data and started a new trail) refuses to start instead of mixing two trails' chains here
-- (src/audit/pg/connect.ts). One row, written by the first server that ships.
CREATE TABLE audit.trail_identity (
  id text PRIMARY KEY CHECK (id ~ '^[0-9a-f-]{36}$'),
  one boolean NOT NULL DEFAULT true UNIQUE CHECK (one),
  bound_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER trail_identity_append_only BEFORE UPDATE OR DELETE ON audit.trail_identity FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();

-- Down Migration

DROP TABLE audit.trail_identity;
