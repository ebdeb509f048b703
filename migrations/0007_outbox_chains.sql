-- 0007_outbox_chains: per-record ordering without scanning the backlog.
--
-- Until now a claim walked unfinished events in id order and, for each, looked for an earlier
-- unfinished event of the same record. Behind a hot record (thousands of events on one key) every
-- claim walked all of them to fill a batch: a claim cost grew with the backlog, not with the batch.
--
-- Now the unfinished events of one record form a chain, kept by the claim statement itself:
--   * syncd.outbox_lane(key, odoo_id) names the record: the key when there is one, else the Odoo id
--     (the queue an event waits in; an event with both waits behind the events of its key). It is
--     an expression of an index rather than a stored column, which every update would compute anew.
--   * A new event is examined by the first claim that walks it: with no earlier event of its record
--     in flight or queued, it is the record's head and is claimed at once; otherwise it is linked
--     behind the record's last event (`next_id` of that event points at it) and marked `waiting`.
--   * Claims walk only events that are not waiting (outbox_claimable_idx), so a claim's cost is
--     proportional to its batch whatever the backlog looks like.
--   * The statement that finishes an event (done, or dead: a dead event does not block) wakes the
--     event its `next_id` points at, and may claim it right away, together with the events behind
--     it of the same kind (coalescing: several upserts of one key become one call to Odoo).
-- `linked` says that an event has been placed in its record's chain (or has events behind it).
-- `leases_lost` counts the times a consumer died (or hung) holding the event: an event whose
-- lease keeps running out is dead after outbox.max_attempts instead of being reclaimed for ever.
--
-- None of these columns is in an index that a claim changes for an event on its own (the usual
-- case), so such a claim still updates the row in place (HOT, see 0004).
--
-- Events already queued when this migration runs are chained here in id order, so an upgrade
-- reorders nothing; events in flight stay in flight with their lease. The migration holds an
-- exclusive lock on the outbox while it runs (producers wait, then go on).

alter table syncd.outbox
    add column waiting boolean not null default false,
    add column linked boolean not null default false,
    add column next_id bigint,
    add column leases_lost integer not null default 0;

create function syncd.outbox_lane(key text, odoo_id bigint) returns text
language sql immutable parallel safe
as $$ select case when key is not null then 'k' || key else 'i' || odoo_id::text end $$;

comment on function syncd.outbox_lane(text, bigint) is
    'syncd: the record an outbox event belongs to for ordering (k<key>, else i<odoo_id>), within its model';

comment on column syncd.outbox.waiting is
    'syncd: queued behind an earlier unfinished event of the same record (not claimable until woken)';
comment on column syncd.outbox.linked is
    'syncd: placed in its record''s chain of unfinished events (see next_id)';
comment on column syncd.outbox.next_id is
    'syncd: the event of the same record queued behind this one, woken when this one is finished';
comment on column syncd.outbox.leases_lost is
    'syncd: how often a consumer holding the event died or hung until its lease ran out';

-- A queue table: vacuumed often and unthrottled, so that the index entries of finished events, which a
-- claim steps over until a vacuum removes them, stay few (about 1 % of the table, or 10,000).
alter table syncd.outbox set (
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0
);

drop index syncd.outbox_unfinished_idx, syncd.outbox_unfinished_key_idx,
    syncd.outbox_unfinished_odoo_id_idx;

-- The claim walks the events it may take (never the waiting ones) in id order.
create index outbox_claimable_idx on syncd.outbox (id) where unfinished and not waiting;
-- A record's unfinished events, for placing a new event in its chain (and the status counts).
create index outbox_lane_idx on syncd.outbox (model, syncd.outbox_lane(key, odoo_id), id) where unfinished;
-- The event that a waiting one is queued behind (discard relinks, housekeeping repairs).
create index outbox_next_idx on syncd.outbox (next_id) where next_id is not null;

-- Chain what is queued now, per record in id order.
with ordered as (
    select id,
           lead(id) over w as next_id,
           row_number() over w as pos,
           count(*) over (partition by model, syncd.outbox_lane(key, odoo_id)) as n
    from syncd.outbox
    where unfinished
    window w as (partition by model, syncd.outbox_lane(key, odoo_id) order by id)
)
update syncd.outbox o
set next_id = ordered.next_id, waiting = ordered.pos > 1, linked = true
from ordered
where o.id = ordered.id and ordered.n > 1;
