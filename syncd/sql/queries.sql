-- Named queries. Each block starts with a line `-- name --`; comment lines inside a block are
-- dropped. Python reads them as `db.queries["name"]`. Names put the entity first so that related
-- queries sort together.

-- migration_bootstrap --
-- The migrator's own bookkeeping; created before any migration runs.
create schema if not exists syncd;
create table if not exists syncd.schema_migrations (
    version     integer primary key,
    name        text not null,
    checksum    text not null,
    applied_at  timestamptz not null default now()
);

-- migration_lock --
-- Serialises concurrent `syncd migrate` runs; released at commit.
select pg_advisory_xact_lock(7581412095643545601);

-- migration_list_applied --
select version, name, checksum, applied_at
from syncd.schema_migrations
order by version;

-- migration_table_exists --
select to_regclass('syncd.schema_migrations') is not null;

-- migration_record --
insert into syncd.schema_migrations (version, name, checksum) values ($1, $2, $3);

-- cdc_state_ensure --
-- A row per configured model; a new model starts in backfill with no cursor.
insert into syncd.cdc_state (model) values ($1) on conflict (model) do nothing;

-- cdc_state_get --
select model, cursor_write_date, cursor_id, phase, rows_mirrored, last_success_at,
       last_reconcile_at, last_error, last_error_at
from syncd.cdc_state where model = $1;

-- cdc_state_list --
select model, cursor_write_date, cursor_id, phase, rows_mirrored, last_success_at,
       last_reconcile_at, last_error, last_error_at
from syncd.cdc_state order by model;

-- cdc_state_advance --
-- Committed in the same transaction as the mirror rows it covers.
update syncd.cdc_state
set cursor_write_date = $2, cursor_id = $3, phase = $4, rows_mirrored = rows_mirrored + $5,
    updated_at = now()
where model = $1;

-- cdc_state_success --
update syncd.cdc_state
set last_success_at = now(), last_error = null, last_error_at = null, updated_at = now()
where model = $1;

-- cdc_state_error --
update syncd.cdc_state set last_error = $2, last_error_at = now(), updated_at = now() where model = $1;

-- cdc_state_reconciled --
update syncd.cdc_state set last_reconcile_at = now(), updated_at = now() where model = $1;

-- cdc_state_add_rows --
update syncd.cdc_state set rows_mirrored = rows_mirrored + $2, updated_at = now() where model = $1;

-- cdc_state_reset --
-- `syncd resync MODEL`: read the model again from the beginning; the mirror stays.
update syncd.cdc_state
set cursor_write_date = null, cursor_id = null, phase = 'backfill', last_reconcile_at = null,
    updated_at = now()
where model = $1;

-- cdc_mirror_columns --
select column_name from information_schema.columns where table_schema = $1 and table_name = $2;

-- cdc_leader_try_lock --
-- Session-level: held by the dedicated connection of the replica polling the model.
select pg_try_advisory_lock(1937337955, hashtext($1));

-- cdc_leader_unlock --
select pg_advisory_unlock(1937337955, hashtext($1));

-- outbox_status_counts --
select status, count(*) as n from syncd.outbox group by status;

-- outbox_oldest_pending_age --
select coalesce(extract(epoch from now() - min(created_at)), 0)::float8
from syncd.outbox where status = 'pending';
