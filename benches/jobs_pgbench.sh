#!/usr/bin/env bash
# The baseline of benches/jobs.rs: pgbench runs the plain single-row post, claim and complete
# statements of a job queue — one INSERT, one UPDATE .. FOR UPDATE SKIP LOCKED LIMIT 1 that
# claims it, one UPDATE that completes it, each its own transaction as a claimer's are — with 1,
# 2 and 4 clients, against a table shaped like the board's `jobs` (same columns, same partial
# index), in a schema of its own that is dropped afterwards. Prints jobs/s (pgbench's tps: one
# script run is one job; with several clients a claim can find every posted job locked by the
# others and claim none, as a real claimer would, so jobs/s counts script runs).
#
#   benches/jobs_pgbench.sh [SECONDS [CLIENTS...]]   (default 10 s, clients 1 2 4;
#                                                     DATABASE_URL as for the tests)
set -euo pipefail
secs="${1:-10}"
shift || true
if [ "$#" -gt 0 ]; then clients_list=("$@"); else clients_list=(1 2 4); fi
url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
schema="pgbench_jobs_$$"
work="$(mktemp -d)"
trap 'psql "$url" -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1; rm -rf "$work"' EXIT
psql "$url" -q -v ON_ERROR_STOP=1 <<SQL
CREATE SCHEMA $schema;
CREATE TABLE $schema.jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, flow_name TEXT NOT NULL,
    fingerprint TEXT NOT NULL, inputs TEXT NOT NULL, idempotency_key TEXT UNIQUE,
    priority INTEGER NOT NULL, run_at BIGINT NOT NULL, state TEXT NOT NULL, outcome TEXT,
    reason TEXT, claims INTEGER NOT NULL DEFAULT 0, takeovers INTEGER NOT NULL DEFAULT 0,
    max_takeovers INTEGER NOT NULL, epoch BIGINT NOT NULL DEFAULT 0, owner TEXT,
    claimed_until BIGINT, cancel_requested BOOLEAN NOT NULL DEFAULT false,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE INDEX jobs_ready ON $schema.jobs (priority DESC, run_at, id) WHERE state IN ('POSTED', 'CLAIMED');
SQL
cat > "$work/job.sql" <<SQL
INSERT INTO $schema.jobs (flow_name, fingerprint, inputs, priority, run_at, state, max_takeovers, created_at, updated_at) VALUES ('Empty', 'fp', '{"x":1}', 0, 0, 'POSTED', 5, 0, 0);
WITH c AS (UPDATE $schema.jobs SET state = 'CLAIMED', epoch = epoch + 1, claims = claims + 1, owner = 'o', claimed_until = 1 WHERE id = (SELECT id FROM $schema.jobs WHERE state = 'POSTED' AND run_at <= 1 ORDER BY priority DESC, run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id) SELECT coalesce(max(id), 0) AS claimed FROM c \gset
UPDATE $schema.jobs SET state = 'DONE', outcome = 'SUCCESS', owner = NULL WHERE id = :claimed AND epoch = 1;
SQL
for clients in "${clients_list[@]}"; do
    tps=$(pgbench "$url" -n -M prepared -c "$clients" -j "$clients" -T "$secs" -f "$work/job.sql" 2>&1 \
        | awk '/^tps/ {print $3}')
    printf 'pgbench post+claim+complete, %d clients: %s jobs/s\n' "$clients" "$tps"
done
