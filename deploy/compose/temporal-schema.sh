#!/bin/sh
# One-shot: create Temporal's two PostgreSQL databases and bring their schemas up to date.
# Runs in the temporalio/admin-tools image, where temporal-sql-tool and the versioned schema
# files (/etc/temporal/schema) ship. temporal-sql-tool reads its connection from SQL_PLUGIN,
# SQL_HOST, SQL_PORT, SQL_USER and SQL_PASSWORD (set by docker-compose.yml). Each step is
# idempotent, as the deprecated auto-setup image ran them on every start: re-running this job,
# or running it after a server upgrade, applies only the schema versions not applied yet.
set -eu

for db in temporal temporal_visibility; do
  if [ "$db" = temporal ]; then kind=temporal; else kind=visibility; fi
  temporal-sql-tool --db "$db" create
  temporal-sql-tool --db "$db" setup-schema -v 0.0
  temporal-sql-tool --db "$db" update-schema -d "/etc/temporal/schema/postgresql/v12/$kind/versioned"
done
echo "Temporal schemas are current"
