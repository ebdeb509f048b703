-- 0002_outbox_claim_index: the claim walks unfinished events in id order (per-record order), so it
-- reads an index of exactly those rows in that order and stops after a batch.
create index outbox_open_id_idx on syncd.outbox (id) where status in ('pending', 'inflight');
