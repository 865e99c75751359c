#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d): the
# audit trail's databases belong to the owner role (POSTGRES_USER, which runs migrations and
# retention); the server connects as authz_app, which `smart-authz audit db migrate` (or the
# server at start-up, given the owner URL) grants read and append rights only.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE authz_app LOGIN PASSWORD '${AUDIT_DB_APP_PASSWORD}';
CREATE DATABASE audit_ha OWNER "${POSTGRES_USER}";
SQL
