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
