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

-- cdc_mirror_ddl_lock --
-- Serialises creating and extending mirror tables (and their schema); released at commit.
select pg_advisory_xact_lock(7581412095643545602);

-- cdc_mirror_columns --
select column_name from information_schema.columns where table_schema = $1 and table_name = $2;

-- cdc_leader_try_lock --
-- Session-level: held by the dedicated connection of the replica polling the model.
select pg_try_advisory_lock(1937337955, hashtext($1));

-- cdc_leader_unlock --
select pg_advisory_unlock(1937337955, hashtext($1));

-- cdc_replica_seen --
-- A replica says it is alive for $2 seconds more and learns how many are (itself included) and
-- its rank among them (how many live holders sort before it); rows of replicas gone for a day are
-- cleared on the way.
with seen as (
    insert into syncd.cdc_replicas as r (holder, seen_until)
    values ($1, now() + make_interval(secs => $2))
    on conflict (holder) do update set seen_until = excluded.seen_until
    returning r.holder
), gone as (
    delete from syncd.cdc_replicas where seen_until < now() - interval '1 day'
)
select 1 + count(*) as replicas, count(*) filter (where holder < $1) as rank
from syncd.cdc_replicas where seen_until > now() and holder <> $1;

-- cdc_replica_leave --
delete from syncd.cdc_replicas where holder = $1;

-- cdc_lease_take --
-- Leadership behind a transaction-mode pooler, in one short statement: for holder $2, take or
-- renew for $3 seconds the lease of every model of $1 that is free, expired or already its own;
-- returns the models $2 holds now. A row locked by a mirror transaction (cdc_lease_hold) is
-- skipped, not waited for — its holder is alive and renews it there — and counts as $2's if the
-- last committed version says so: a renewal never waits behind anyone's page commit.
with wanted as (
    select model from unnest($1::text[]) as w(model)
), takeable as (
    select l.model
    from syncd.cdc_leases l
    join wanted w on w.model = l.model
    where l.lease_until < now() or l.holder = $2
    order by l.model
    for update of l skip locked
), renewed as (
    update syncd.cdc_leases l
    set holder = $2, lease_until = now() + make_interval(secs => $3),
        acquired_at = case when l.holder = $2 then l.acquired_at else now() end
    from takeable t
    where l.model = t.model
    returning l.model
), inserted as (
    insert into syncd.cdc_leases (model, holder, lease_until)
    select w.model, $2, now() + make_interval(secs => $3)
    from wanted w
    where not exists (select 1 from syncd.cdc_leases l where l.model = w.model)
    order by w.model
    on conflict (model) do nothing
    returning model
)
select model from renewed
union
select model from inserted
union
select l.model
from syncd.cdc_leases l
join wanted w on w.model = l.model
where l.holder = $2 and l.lease_until > now();

-- cdc_lease_hold --
-- First statement of every mirror transaction behind a transaction-mode pooler: the lease of $1
-- is still $2's and valid (and renewed for $3 seconds). The row stays locked until the commit, so
-- nobody takes the model over while this transaction can still write its rows and cursor. Nothing
-- returned: the lease is gone, roll back. clock_timestamp(), not the transaction's start. The
-- transaction also gets idle_in_transaction_session_timeout = the lease: a replica that hangs
-- inside it (or whose network is gone) cannot keep the row locked, and the model, for longer.
update syncd.cdc_leases
set lease_until = greatest(lease_until, clock_timestamp() + make_interval(secs => $3::float8))
from (select set_config('idle_in_transaction_session_timeout', ceil($3::float8 * 1000)::bigint::text, true))
     as fence(timeout_ms)
where model = $1 and holder = $2 and lease_until > clock_timestamp()
returning lease_until;

-- cdc_lease_release --
-- Clean shutdown: hand the models over at once instead of letting their leases run out.
delete from syncd.cdc_leases where model = any($1::text[]) and holder = $2;

-- cdc_lease_list --
select model, holder, lease_until, acquired_at, lease_until > now() as valid
from syncd.cdc_leases
order by model;

-- outbox_open_counts --
-- Unfinished events by status through outbox_unfinished_idx, dead ones through outbox_dead_idx
-- (the dead count feeds an alert): never the whole table, which keeps done events for
-- outbox.retention_days.
select status, count(*) as n from syncd.outbox where unfinished group by status
union all
select 'dead', count(*) from syncd.outbox where not unfinished and done_at is null and status = 'dead';

-- outbox_done_count --
-- Done events (done_at is written only when an event is done). With most of the table done,
-- PostgreSQL reads the table for this, about 0.2 s per million retained done events: the daemon
-- counts them every few minutes (DONE_COUNT_EVERY), not every housekeeping round.
select count(*) from syncd.outbox where done_at is not null;

-- outbox_oldest_pending_age --
select coalesce(extract(epoch from now() - min(created_at)), 0)::float8
from syncd.outbox where unfinished and status = 'pending';

-- outbox_claim --
-- One short statement per batch. It first records the outcomes of the events this consumer
-- delivered since its last statement ($3–$9; each kind's ids sorted ascending, so `width_bucket` finds
-- an id's position in its array by binary search), touching only events this consumer still holds:
-- one whose lease ran out and was claimed again is left to its new holder. Then it leases the next
-- batch: claimable events in id order behind a materialization fence, skipping rows other consumers
-- hold. An event waits while an earlier event of the same record (same model and key, or same model
-- and odoo_id) is unfinished, so a record's events are applied in id order and never two at once; a
-- dead event does not block. All parts of the statement see one snapshot, in which the events
-- finished here are still in flight: the ordering checks skip them (`finished`), so the next event
-- of a record can be leased by the statement that finishes its predecessor. The batch size is
-- written into the text (`limit :batch_size`) rather than passed: with a constant LIMIT PostgreSQL
-- keeps one generic plan for the prepared statement instead of planning every batch anew.
-- Returns the leased events, then (when events were done) one row holding the done events'
-- enqueue-to-done seconds.
with done as (
    update syncd.outbox o
    set status = 'done', done_at = now(), result_id = ($4::bigint[])[width_bucket(o.id, $3::bigint[])],
        last_error = null, locked_until = null, locked_by = null
    where o.id = any($3::bigint[]) and o.status = 'inflight' and o.locked_by = $1
    returning o.id, extract(epoch from o.done_at - o.created_at)::float8 as seconds
),
retry as (
    update syncd.outbox o
    set status = 'pending',
        available_at = now() + make_interval(secs => ($6::float8[])[width_bucket(o.id, $5::bigint[])]),
        last_error = ($7::text[])[width_bucket(o.id, $5::bigint[])], locked_until = null, locked_by = null
    where o.id = any($5::bigint[]) and o.status = 'inflight' and o.locked_by = $1
),
dead as (
    update syncd.outbox o
    set status = 'dead', last_error = ($9::text[])[width_bucket(o.id, $8::bigint[])],
        locked_until = null, locked_by = null
    where o.id = any($8::bigint[]) and o.status = 'inflight' and o.locked_by = $1
    returning o.id
),
finished as (
    select id from done union all select id from dead
),
candidates as materialized (
    select o.id
    from syncd.outbox o
    where o.unfinished
      and ((o.status = 'pending' and o.available_at <= now())
           -- a lease ran out; not one whose outcome this statement writes (in flight until now)
           or (o.status = 'inflight' and o.locked_until < now()
               and o.id <> all($3::bigint[]) and o.id <> all($5::bigint[]) and o.id <> all($8::bigint[])))
      and (o.key is null or not exists (
            select 1 from syncd.outbox e
            where e.unfinished and e.model = o.model and e.key = o.key and e.id < o.id
              and e.id <> all(array(select id from finished))))
      and (o.odoo_id is null or not exists (
            select 1 from syncd.outbox e
            where e.unfinished and e.model = o.model and e.odoo_id = o.odoo_id and e.id < o.id
              and e.id <> all(array(select id from finished))))
    order by o.id
    limit :batch_size
    for update of o skip locked
),
claimed as (
    update syncd.outbox o
    set status = 'inflight', attempts = o.attempts + 1, locked_by = $1,
        locked_until = now() + make_interval(secs => $2)
    where o.id = any(array(select id from candidates))
    returning o.id, o.model, o.op, o.key, o.odoo_id, o.payload::text as payload, o.attempts
)
select id, model, op, key, odoo_id, payload, attempts, null::float8[] as done_seconds from claimed
union all
select null, null, null, null, null, null, null, array_agg(seconds) from done having count(*) > 0;

-- outbox_extend_lease --
update syncd.outbox set locked_until = now() + make_interval(secs => $3)
where id = any($1::bigint[]) and status = 'inflight' and locked_by = $2;

-- outbox_release --
-- Shutdown: give claimed, undelivered events back at once, without counting the attempt.
update syncd.outbox
set status = 'pending', attempts = greatest(attempts - 1, 0), locked_until = null, locked_by = null
where id = any($1::bigint[]) and status = 'inflight' and locked_by = $2;

-- outbox_delete_done --
-- Housekeeping: done events older than outbox.retention_days, a bounded batch at a time.
delete from syncd.outbox
where id in (select id from syncd.outbox
             where status = 'done' and done_at < now() - make_interval(secs => $1)
             limit $2);

-- outbox_list --
select id, created_at, model, op, key, odoo_id, payload, status, attempts, available_at,
       last_error, done_at, result_id
from syncd.outbox
where $1::text is null or status = $1
order by id desc
limit $2;

-- outbox_retry --
-- Operator redrive: dead events (all, or the given ids) become pending again with fresh attempts.
-- `syncd outbox retry` passes only the ids that outbox_retry_later_applied cleared (or, with
-- --force, every id it checked), in the same transaction (syncd.outbox.redrive).
update syncd.outbox
set status = 'pending', attempts = 0, available_at = now(), last_error = null
where not unfinished and done_at is null and status = 'dead'  -- outbox_dead_idx
  and ($1::bigint[] is null or id = any($1::bigint[]))
returning id;

-- outbox_retry_later_applied --
-- Before a redrive (`syncd outbox retry`): the dead events among $1 (every dead event when NULL),
-- each with the later events of its record (a higher id, same model and key or same model and
-- odoo_id, as the claim orders them) that were applied (done) or are being applied (inflight).
-- Retrying such a dead event would set the record back to the values those later events replaced.
-- One row per dead event and later event, in id order; later_id is NULL for a dead event with none.
-- Done events are in no index by record (they leave the `unfinished` indexes), so the events after
-- the oldest of these dead events are read once, in id order through the primary key, each checked
-- against hashes of the dead events' records: one pass for the whole set, never one per dead event
-- (a join on `e.id > d.id` lets PostgreSQL plan exactly that: a range scan of the table per id).
with dead as materialized (
    select id, model, key, odoo_id
    from syncd.outbox
    where not unfinished and done_at is null and status = 'dead'  -- outbox_dead_idx
      and ($1::bigint[] is null or id = any($1::bigint[]))
),
later as materialized (
    select e.id, e.model, e.key, e.odoo_id, e.op, e.status, e.done_at
    from syncd.outbox e
    where e.id > (select min(id) from dead)
      and e.status in ('done', 'inflight')
      and ((e.model, e.key) in (select model, key from dead)
           or (e.model, e.odoo_id) in (select model, odoo_id from dead))
),
pairs as (
    select d.id as dead_id, l.id, l.op, l.status, l.done_at
    from dead d join later l on l.model = d.model and l.key = d.key and l.id > d.id
    union
    select d.id, l.id, l.op, l.status, l.done_at
    from dead d join later l on l.model = d.model and l.odoo_id = d.odoo_id and l.id > d.id
)
select d.id, d.model, d.key, d.odoo_id, p.id as later_id, p.op as later_op, p.status as later_status,
       p.done_at as later_done_at
from dead d left join pairs p on p.dead_id = d.id
order by d.id, p.id;

-- outbox_discard --
delete from syncd.outbox where id = any($1::bigint[]) and status <> 'inflight' returning id;

-- cdc_mark_origin --
-- Transaction-local, so it works through transaction-mode poolers. Users' triggers on mirror
-- tables skip enqueueing when current_setting('syncd.origin', true) = 'cdc' (no echo loops).
select set_config('syncd.origin', 'cdc', true);
