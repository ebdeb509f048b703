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

-- cdc_state_fields --
-- What fields_get said of the model, kept so that polls, restarts and `syncd --once` need not ask.
update syncd.cdc_state set odoo_fields = $2, odoo_fields_at = now(), updated_at = now() where model = $1;

-- cdc_state_fields_get --
select odoo_fields, odoo_fields_at from syncd.cdc_state where model = $1;

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

-- cdc_state_hinted --
-- When webhook hints for models ($1) last arrived ($2), written at most about once a second by each
-- replica that receives hints; the latest wins when replicas race. Not progress: updated_at stays.
update syncd.cdc_state as s
set last_hint_at = greatest(s.last_hint_at, h.at)
from unnest($1::text[], $2::timestamptz[]) as h (model, at)
where s.model = h.model;

-- cdc_hint_notify --
-- Passes webhook hints on to the replica that polls their model: one NOTIFY per payload
-- ('{"model": ..., "ids": [...]}'), all in one statement.
select pg_notify('syncd_cdc_hint', payload) from unnest($1::text[]) as payload;

-- cdc_mirror_ddl_lock --
-- Serialises creating and extending mirror tables (and their schema); released at commit.
select pg_advisory_xact_lock(7581412095643545602);

-- cdc_mirror_columns --
select column_name from information_schema.columns where table_schema = $1 and table_name = $2;

-- cdc_leader_try_lock --
-- Session-level: held by the dedicated connection of the replica polling the model, keyed by the
-- model's row in syncd.cdc_lock_keys. The first replica to lock a model adds the row, with the
-- first of hashtext(model), hashtext(model || '#1'), … '#31' that no other model has (the first,
-- the key of before 0010, but for a model whose name hashes like another's). When another replica
-- adds a row at the same moment (for this model, or this key), this statement sees neither its own
-- row (there is none) nor the other's (committed after its snapshot): no row, no lock this time,
-- the key next time.
with candidate as (
    select hashtext(case when n = 0 then $1::text else $1::text || '#' || n end) as key, n
    from generate_series(0, 31) as n
), numbered as (
    insert into syncd.cdc_lock_keys (model, key)
    select $1::text, c.key from candidate c
    where not exists (select from syncd.cdc_lock_keys where model = $1::text)
      and not exists (select from syncd.cdc_lock_keys k where k.key = c.key)
    order by c.n
    limit 1
    on conflict do nothing
    returning key
)
select pg_try_advisory_lock(1937337955, k.key)
from (select key from numbered union all select key from syncd.cdc_lock_keys where model = $1::text) as k;

-- cdc_leader_unlock --
select pg_advisory_unlock(1937337955, key) from syncd.cdc_lock_keys where model = $1::text;

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
-- dead events and held conflicts (status 'conflict') are the finished ones without a done_at
select status, count(*) from syncd.outbox where not unfinished and done_at is null group by status;

-- outbox_conflicts_held --
-- Held conflicts per model, with the age of the oldest (outbox_dead_idx: finished, no done_at).
select model, count(*) as n, extract(epoch from now() - min(created_at))::float8 as oldest_seconds
from syncd.outbox
where not unfinished and done_at is null and status = 'conflict'
group by model
order by model;

-- outbox_done_count --
-- Done events (done_at is written only when an event is done). With most of the table done,
-- PostgreSQL reads the table for this, about 0.2 s per million retained done events: the daemon
-- counts them every few minutes (DONE_COUNT_EVERY), not every housekeeping round.
select count(*) from syncd.outbox where done_at is not null;

-- outbox_oldest_pending_age --
select coalesce(extract(epoch from now() - min(created_at)), 0)::float8
from syncd.outbox where unfinished and status = 'pending';

-- outbox_claim --
-- One short statement per batch; every part sees one snapshot.
-- 1. Outcomes of the events this consumer delivered since its last statement ($3–$9, $12–$13; each kind's
--    ids sorted ascending, so `width_bucket` finds an id's position in its array by binary search),
--    touching only events this consumer still holds: one whose lease ran out and was claimed again
--    is left to its new holder. A finished event (done or dead: a dead one does not block) wakes the
--    event queued behind it (`next_id`, read from the row's latest version).
-- 2. The walk: up to a batch of events that are not waiting (outbox_claimable_idx), in id order,
--    skipping rows other consumers hold. An expired lease is taken back; one on an event that has
--    used its attempts ($10) makes it dead instead (its consumer died or hung on it every time).
-- 3. New events of the walk are placed in their record's chain (see migration 0007): with nothing
--    of the record in flight or queued, the first is the record's head and is claimed; the others
--    queue behind it. With a chain, they queue behind its last event, which is locked (SKIP
--    LOCKED) and must still be unfinished with nothing behind it; otherwise they stay new and the
--    next claim places them. An event committed after a later one of its record was already
--    placed waits until the record has nothing in flight.
-- 4. Each head claimed (from the walk, or woken) takes the events queued behind it of the same kind
--    along, up to $11 (coalescing: consecutive upserts of one key, writes of one odoo_id).
-- The batch size is written into the text (`limit :batch_size`) rather than passed: with a
-- constant LIMIT PostgreSQL keeps one generic plan for the prepared statement.
-- Returns the claimed events (fold_of: the head an event is folded into), then, when anything was
-- finished or new events were left for the next claim to place, one row with the done events'
-- enqueue-to-done seconds, the woken events this snapshot could not see (committed after it
-- started: the caller wakes them in a statement of its own), and whether new events were left
-- (`deferred`: an empty claim then does not mean that nothing is claimable; the caller claims
-- again).
with recursive done as (
    -- (a held conflict, $13 its message: applied but for the fields held, finished like a done one,
    -- kept like a dead one until resolved; $12: the conflicts found, held or not)
    update syncd.outbox o
    set status = case when ($13::text[])[width_bucket(o.id, $3::bigint[])] is null then 'done' else 'conflict' end,
        done_at = case when ($13::text[])[width_bucket(o.id, $3::bigint[])] is null then now() end,
        result_id = ($4::bigint[])[width_bucket(o.id, $3::bigint[])],
        -- (a resolved conflict written later keeps the conflicts it had: the record of what happened)
        conflicts = coalesce(($12::text[])[width_bucket(o.id, $3::bigint[])]::jsonb, o.conflicts),
        last_error = ($13::text[])[width_bucket(o.id, $3::bigint[])], locked_until = null, locked_by = null
    where o.id = any($3::bigint[]) and o.status = 'inflight' and o.locked_by = $1
    returning o.id, o.next_id, extract(epoch from o.done_at - o.created_at)::float8 as seconds
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
    returning o.id, o.next_id
),
-- (the columns the other parts filter on come first: each scan of this CTE's rows reads their
-- columns up to the last one it needs)
candidates as materialized (
    select not o.linked and o.status = 'pending' and o.attempts = 0 as fresh,
           o.id, o.status, o.attempts, o.next_id, o.op, o.model, o.key, o.odoo_id, o.locked_by
    from syncd.outbox o
    where o.unfinished and not o.waiting
      and ((o.status = 'pending' and o.available_at <= now())
           -- a lease ran out; not one whose outcome this statement writes (in flight until now)
           or (o.status = 'inflight' and o.locked_until < now()
               and o.id <> all($3::bigint[]) and o.id <> all($5::bigint[]) and o.id <> all($8::bigint[])))
    order by o.id
    limit :batch_size
    for update of o skip locked
),
-- New events of the walk, and whether each is the only unfinished event of its record (the usual
-- case): its head, nothing to place. Probed once the walk has locked them, not for every row the
-- walk passes (a row that another consumer is claiming is skipped after its probe otherwise). One
-- probe for another unfinished event of the record, on either side: a descent of outbox_lane_idx
-- to the record's first entry (a probe per side cost one descent more per event walked).
-- (`order by … limit 1`: through outbox_lane_idx even when one record has most rows)
news as materialized (
    select (select e.id from syncd.outbox e
            where e.unfinished and e.model = c.model and e.id <> c.id
              and syncd.outbox_lane(e.key, e.odoo_id) = syncd.outbox_lane(c.key, c.odoo_id)
            order by e.model, syncd.outbox_lane(e.key, e.odoo_id), e.id limit 1) is null as alone,
           c.id, c.model, c.key, c.odoo_id
    from candidates c
    where c.fresh
),
lost as (
    update syncd.outbox o
    set status = 'dead', leases_lost = o.leases_lost + 1, locked_until = null, locked_by = null,
        last_error = format('its lease was lost %s times: the consumer delivering it died or hung each'
                            ' time (last holder %s); dead after %s attempts',
                            o.leases_lost + 1, o.locked_by, o.attempts)
    from candidates c
    where o.id = c.id and c.status = 'inflight' and c.attempts >= $10
    returning o.id, o.next_id
),
finished as (
    select id, next_id from done
    union all select id, next_id from dead
    union all select id, next_id from lost
),
woken as materialized (
    select o.id, o.op, o.key, o.odoo_id, o.next_id,
           (o.status = 'pending' and o.available_at <= now())
           or (o.status = 'inflight' and o.locked_until < now()) as claimable
    from syncd.outbox o
    where o.id = any(array(select next_id from finished where next_id is not null))
      and o.id <> all(array(select id from finished))
      and o.unfinished
),
heads as (
    select c.id, c.op, c.key, c.odoo_id, c.next_id
    from candidates c
    where not c.fresh and c.id <> all(array(select id from lost))
    union all
    select w.id, w.op, w.key, w.odoo_id, w.next_id from woken w where w.claimable and :batch_size > 0
),
folds (head, id, op, key, odoo_id, next_id, depth) as (
    select h.id, e.id, h.op, h.key, h.odoo_id, e.next_id, 1
    from heads h
    join syncd.outbox e on e.id = h.next_id
    where h.op in ('upsert', 'write') and $11 > 0
      and e.unfinished and e.waiting and e.op = h.op
      and (e.status = 'pending' or (e.status = 'inflight' and e.locked_until < now()))
      and case when h.op = 'upsert' then e.key = h.key else e.odoo_id = h.odoo_id end
    union all
    select f.head, e.id, f.op, f.key, f.odoo_id, e.next_id, f.depth + 1
    from folds f
    join syncd.outbox e on e.id = f.next_id
    where f.depth < $11
      and e.unfinished and e.waiting and e.op = f.op
      and (e.status = 'pending' or (e.status = 'inflight' and e.locked_until < now()))
      and case when f.op = 'upsert' then e.key = f.key else e.odoo_id = f.odoo_id end
),
firsts as (
    select n.model, syncd.outbox_lane(n.key, n.odoo_id) as lane, min(n.id) as first_id
    from news n
    where not n.alone
    group by 1, 2
),
-- a record's new events are placed together, as many as a fold or a batch takes (a hot
-- record's backlog is placed in a few statements, not one batch's share at a time): the run of
-- new events from the first on, in id order, that this statement could lock, without a gap
run as (
    select f.first_id, e.id, row_number() over (partition by f.first_id order by e.id) as pos
    from firsts f
    cross join lateral (
        select e.id
        from syncd.outbox e
        where e.unfinished and e.model = f.model and syncd.outbox_lane(e.key, e.odoo_id) = f.lane
          and e.id >= f.first_id
        order by e.model, syncd.outbox_lane(e.key, e.odoo_id), e.id
        limit greatest($11 + 1, :batch_size)
    ) e
),
-- (the walk locked its own events already)
run_locked as (
    select o.id
    from syncd.outbox o
    where o.id = any(array(select id from run where id not in (select id from candidates)))
      and o.unfinished and not o.waiting and not o.linked and o.status = 'pending' and o.attempts = 0
      and o.available_at <= now()
    for update of o skip locked
),
run_unbroken as (
    select r.first_id, r.id,
           bool_and(r.id in (select id from run_locked) or r.id in (select id from news where not alone))
               over (partition by r.first_id order by r.pos) as unbroken
    from run r
),
groups as (
    select f.model, f.lane, f.first_id, u.ids, u.above_id
    from firsts f
    join (select first_id, array_agg(id order by id) filter (where unbroken) as ids,
                 min(id) filter (where not unbroken) as above_id
          from run_unbroken group by first_id) u
        on u.first_id = f.first_id
),
placed as (
    select g.first_id, g.ids, lo.id as pred_id, lo.next_id as pred_next, lo.fresh as pred_fresh,
           coalesce(hi.placed, false) as placed_above, hi.id as above_id
    from groups g
    -- the record's nearest earlier unfinished event: normally the last of its chain
    left join lateral (
        select e.id, e.next_id, not e.linked and e.status = 'pending' and e.attempts = 0 as fresh
        from syncd.outbox e
        where e.unfinished and e.model = g.model and syncd.outbox_lane(e.key, e.odoo_id) = g.lane
          and e.id < g.first_id
        order by e.model desc, syncd.outbox_lane(e.key, e.odoo_id) desc, e.id desc
        limit 1
    ) lo on true
    -- with none: the record's next later event past the group (from the run), if it was placed
    -- already (the group committed after it)
    left join lateral (
        select e.id, e.linked or e.status = 'inflight' or e.attempts > 0 as placed
        from syncd.outbox e
        where lo.id is null and e.id = g.above_id
    ) hi on true
),
decided as (
    -- how: 'head' (the first is the record's head), 'behind_walked' (behind a head this statement
    -- claims), 'behind' (behind the record's last event, locked below); 'wait': left for the next
    -- claim, which will place them (another consumer was placing the record, or this statement
    -- changes its queue); 'after': left until the record's queue has moved on (its last event waits
    -- out a backoff, or an event committed late waits for the record's queue to drain)
    select p.first_id, p.ids, p.pred_id,
           case
               -- (unless that event is finished by this statement with nothing behind it)
               when p.pred_id is null then
                   case when not p.placed_above then 'head'
                        when (select f.next_id is null from finished f where f.id = p.above_id) then 'head'
                        else 'after' end
               -- another consumer is placing it
               when p.pred_fresh then 'wait'
               -- the queue has moved on past these (they committed late)
               when p.pred_next is not null then 'after'
               -- finished by this statement with nothing queued behind it (its latest version): the
               -- record has nothing else unfinished before these, the first is its head
               when p.pred_id in (select id from finished) then
                   case when (select f.next_id from finished f where f.id = p.pred_id) is null
                        then 'head' else 'wait' end
               -- retried, or an outcome for a lease that another consumer took over: these wait
               when p.pred_id = any($3::bigint[]) or p.pred_id = any($5::bigint[])
                    or p.pred_id = any($8::bigint[]) then 'after'
               when p.pred_id in (select id from woken)
                    or p.pred_id in (select id from folds) then 'wait'
               when p.pred_id in (select id from candidates) then
                   case when (select c.next_id from candidates c where c.id = p.pred_id) is null
                        then 'behind_walked' else 'wait' end
               else 'behind'
           end as how
    from placed p
),
pred_locks as (
    select e.id
    from syncd.outbox e
    where e.id = any(array(select pred_id from decided where how = 'behind'))
      and e.unfinished and e.next_id is null
    for update of e skip locked
),
behind as (
    update syncd.outbox e
    set next_id = d.first_id, linked = true
    from decided d
    where d.how = 'behind' and e.id = d.pred_id and e.id in (select id from pred_locks)
    returning d.first_id
),
-- (new events alone in their record are claimed by claimed_alone)
plan as (
    -- walked events that were placed before: claimed (a group of new events may queue behind one)
    select c.id, true as claim, false as waiting, d.first_id is not null as link, d.first_id as next_id,
           null::bigint as fold_of, c.locked_by as prev_holder
    from candidates c
    left join decided d on d.how = 'behind_walked' and d.pred_id = c.id
    where not c.fresh and c.id <> all(array(select id from lost))
    union all
    -- woken by their predecessor's end: claimed when due
    select w.id, w.claimable and :batch_size > 0, false, false, null, null, null from woken w
    union all
    -- folded into their head's call
    select f.id, true, true, false, null, f.head, null from folds f
    union all
    -- new events: a record's first is its head, the others queue behind it
    select x.id, d.how = 'head' and x.pos = 1, not (d.how = 'head' and x.pos = 1),
           d.how <> 'head' or cardinality(d.ids) > 1, d.ids[x.pos + 1], null, null
    from decided d
    cross join lateral unnest(d.ids) with ordinality as x(id, pos)
    where d.how in ('head', 'behind_walked') or d.first_id in (select first_id from behind)
),
-- new events alone in their record (the usual case) are its head: claimed as they are, without
-- the plan (its sort and join cost a claim of distinct keys a tenth of its work)
claimed_alone as (
    update syncd.outbox o
    set status = 'inflight', attempts = o.attempts + 1, locked_by = $1,
        locked_until = now() + make_interval(secs => $2)
    where o.id = any(array(select id from news where alone)) and o.unfinished
    returning o.id, o.model, o.op, o.key, o.odoo_id, o.payload::text as payload, o.attempts,
              o.base::text as base
),
claimed as (
    update syncd.outbox o
    set status = case when p.claim then 'inflight' else o.status end,
        attempts = o.attempts + case when p.claim then 1 else 0 end,
        leases_lost = o.leases_lost + case when p.claim and o.status = 'inflight' then 1 else 0 end,
        locked_by = case when p.claim then $1 else o.locked_by end,
        locked_until = case when p.claim then now() + make_interval(secs => $2) else o.locked_until end,
        waiting = p.waiting,
        linked = o.linked or p.link,
        next_id = coalesce(p.next_id, o.next_id)
    from (select distinct on (id) * from plan order by id, claim desc) p
    where o.id = any(array(select id from plan)) and o.id = p.id and o.unfinished
    returning o.id, o.model, o.op, o.key, o.odoo_id, o.payload::text as payload, o.attempts, p.claim,
              p.fold_of, p.prev_holder, o.base::text as base
)
select id, model, op, key, odoo_id, payload, attempts, null::bigint as fold_of, null::text as prev_holder,
       null::float8[] as done_seconds, null::bigint[] as unseen, null::boolean as deferred, base
from claimed_alone
union all
select id, model, op, key, odoo_id, payload, attempts, fold_of, prev_holder, null, null, null, base
from claimed
where claim
union all
select null, null, null, null, null, null, null, null, null,
       (select array_agg(seconds) from done where seconds is not null),
       array(select f.next_id from finished f
             where f.next_id is not null and f.next_id <> all(array(select id from finished))
               and f.next_id not in (select id from claimed)),
       exists (select from decided where how = 'wait')
       or exists (select from decided d where d.how = 'behind' and d.first_id not in (select first_id from behind)),
       null
where exists (select from finished) or exists (select from decided where how in ('wait', 'behind'));

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
-- Operator redrive: dead events (all, or the given ids) become pending again with fresh attempts,
-- as new events: the next claim places them behind what their record has queued now.
-- `syncd outbox retry` passes only the ids that outbox_retry_later_applied cleared (or, with
-- --force, every id it checked), in the same transaction (syncd.outbox.redrive).
update syncd.outbox
set status = 'pending', attempts = 0, leases_lost = 0, available_at = now(), last_error = null,
    waiting = false, linked = false, next_id = null
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
-- Delete events (never in-flight ones). An event that others queue behind is cut out of its
-- record's chain: whatever pointed at it points at the first event after it that stays. Returns
-- the ids deleted and (as `wake`) the events that lost their predecessor: outbox_wake wakes the
-- ones that nothing unfinished is queued in front of any more.
with recursive gone as (
    delete from syncd.outbox where id = any($1::bigint[]) and status <> 'inflight'
    returning id, next_id
),
after (id, next_id) as (
    select g.id, g.next_id from gone g
    union all
    select a.id, g.next_id from after a join gone g on g.id = a.next_id
),
survivor as (
    select id, next_id from after
    where next_id is null or next_id <> all(array(select id from gone))
),
relinked as (
    update syncd.outbox p set next_id = s.next_id
    from survivor s
    where p.next_id = s.id and p.id <> all(array(select id from gone))
)
select g.id, s.next_id as wake
from gone g join survivor s on s.id = g.id;

-- outbox_wake --
-- Wake waiting events (the given ones, or all: housekeeping) that no unfinished event points at
-- any more: their predecessor finished in a statement that could not see them (its snapshot
-- began before they were queued behind it), was discarded, or was finished by a consumer of a
-- version before migration 0007.
update syncd.outbox s
set waiting = false
where s.unfinished and s.waiting
  and ($1::bigint[] is null or s.id = any($1::bigint[]))
  and not exists (select from syncd.outbox p where p.next_id = s.id and p.unfinished)
returning s.id;

-- cdc_mark_origin --
-- Transaction-local, so it works through transaction-mode poolers. Users' triggers on mirror
-- tables skip enqueueing when current_setting('syncd.origin', true) = 'cdc' (no echo loops).
select set_config('syncd.origin', 'cdc', true);

-- mirror_refresh_requested --
-- Records of model $1 whose mirror row the CDC reads again (their app change settled), oldest first.
select odoo_id, requested_at from syncd.mirror_refresh where model = $1 order by requested_at limit $2;

-- mirror_refresh_done --
-- The requests of $2 read (each as of its requested_at $3: a newer request for the record stays).
delete from syncd.mirror_refresh r
using unnest($2::bigint[], $3::timestamptz[]) as t(odoo_id, requested_at)
where r.model = $1 and r.odoo_id = t.odoo_id and r.requested_at <= t.requested_at;

-- outbox_resolve --
-- `syncd outbox resolve ID --take app|odoo` (migration 0008): the event's new status.
select syncd.outbox_resolve($1, $2);

-- cdc_state_hints --
-- When the last webhook hint of each model arrived (`syncd odoo webhooks status`).
select model, last_hint_at from syncd.cdc_state where model = any($1::text[]);
