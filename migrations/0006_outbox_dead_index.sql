-- 0006_outbox_dead_index: dead events found without reading the whole table.
--
-- 0004 dropped the dead-letter index because it named `status`, and a claim (pending → inflight)
-- that changes a column an index names cannot update the row in place. This one names only
-- `unfinished` (unchanged by a claim or a retry) and `done_at` (written only when an event is done):
-- dead events are exactly the finished ones without a done_at. Claims stay in place (HOT); the dead
-- count of the housekeeping (every 30 s, behind an alert) and `syncd outbox retry --all-dead` read
-- this index instead of every retained done event. The index is built once, under a lock that
-- holds writers back while it is built.

create index outbox_dead_idx on syncd.outbox (id) where not unfinished and done_at is null;
