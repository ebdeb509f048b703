-- 0003_cdc_leases: CDC leadership without session state, for database.pooler = "transaction"
-- (PgBouncer in transaction mode, Supabase's port 6543). There a session-level advisory lock stays
-- on whichever server connection ran pg_try_advisory_lock and outlives the replica that took it, so
-- leadership is a row instead: a replica polls a model while it holds the model's lease, renews it
-- every cdc.interval_seconds, and another replica takes the model over once lease_until has passed.
-- Every mirror transaction re-checks (and locks) the row before it writes, so a replica whose lease
-- ran out can never commit over the new leader's cursor.
create table syncd.cdc_leases (
    model       text primary key,
    -- Which replica holds it: daemon.instance_id (or host:pid) and a token of the running service.
    holder      text not null,
    lease_until timestamptz not null,
    -- When the current holder took it (kept while it renews).
    acquired_at timestamptz not null default now()
);

comment on table syncd.cdc_leases is
    'syncd: which replica polls a model when database.pooler = transaction (valid while lease_until > now())';
