-- 0010_cdc_lock_keys: a CDC advisory lock key per model that no other model shares.
--
-- The session-level lock of a model (database.pooler = none or session) was keyed by
-- hashtext(model), 32 bits: two model names with the same hash (such as 'x.21443' and 'x.51293')
-- shared one lock, so the replica polling one kept every other replica from polling the other.
-- Here each model gets its key once, for good: the first replica that locks a model adds its row
-- (cdc_leader_try_lock), and every replica then locks that key for it, whichever models it is
-- configured with and in whatever order; the primary key and the unique key make two models with
-- one key impossible. The key is hashtext(model) as before unless another model has that one
-- already, so that replicas of before 0010, still running during an upgrade, and the new ones
-- exclude each other. Plain rows, kept forever (one per model ever polled).
create table syncd.cdc_lock_keys (
    model text primary key,
    key   integer not null unique
);

comment on table syncd.cdc_lock_keys is
    'syncd: the key of each model''s CDC advisory lock, pg_try_advisory_lock(1937337955, key)';
