-- 0004_outbox_hot_claims: claiming an event changes no indexed column, so PostgreSQL updates the row
-- in place (a HOT update: no new index entries), and the claim reads indexes of unfinished events only.
--
-- Until now every partial index named `status` in its predicate. PostgreSQL updates a row in place
-- only when no indexed column changes, and a column named in an index predicate counts, so each
-- claim (pending → inflight) added an entry to the primary key and three more indexes, and finishing
-- the event added two more. The indexes below name `unfinished` instead: derived from `status`, it
-- stays true from pending to inflight and back (a retry, a lease given back) and turns false only
-- when the event is done or dead. The claim then writes no index entry at all; finishing an event
-- writes one to the primary key and, for done events, one to the done_at index.
--
-- A fillfactor of 50 keeps half of each page free for those in-place versions: a claim updates
-- neighbouring rows together, and a version fits on its page only if there is room there.
-- The table is rewritten once (the stored column), under an exclusive lock, when this migration runs.

alter table syncd.outbox set (fillfactor = 50);
alter table syncd.outbox
    add column unfinished boolean generated always as (status in ('pending', 'inflight')) stored;

comment on column syncd.outbox.unfinished is
    'syncd: status is pending or inflight (derived; lets claims update rows in place)';

drop index syncd.outbox_pending_idx, syncd.outbox_inflight_idx, syncd.outbox_open_key_idx,
    syncd.outbox_open_odoo_id_idx, syncd.outbox_open_id_idx, syncd.outbox_done_at_idx,
    syncd.outbox_dead_idx;

-- The claim walks unfinished events in id order and stops after a batch.
create index outbox_unfinished_idx on syncd.outbox (id) where unfinished;
-- Per-record ordering: an earlier unfinished event of the same record is found without a scan.
create index outbox_unfinished_key_idx on syncd.outbox (model, key, id) where unfinished and key is not null;
create index outbox_unfinished_odoo_id_idx on syncd.outbox (model, odoo_id, id)
    where unfinished and odoo_id is not null;
-- Housekeeping: done events past retention.
create index outbox_done_at_idx on syncd.outbox (done_at) where done_at is not null;
-- The dead-letter index is not replaced: dead events are few and read by operators (`syncd outbox
-- list`, `retry --all-dead`), and an index naming status would cost every claim its in-place update.
