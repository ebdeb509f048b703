-- 0001_initial: the syncd schema — CDC cursors and the transactional outbox.
--
-- Applied by `syncd migrate` inside one transaction under an advisory lock. The schema `syncd` and
-- the bookkeeping table `syncd.schema_migrations` are created by the migrator itself.

-- ------------------------------------------------------------------------------------------- CDC

-- One row per mirrored Odoo model. The cursor is committed in the same transaction as the mirror
-- rows it covers, so after a crash the mirror and the cursor agree.
create table syncd.cdc_state (
    model               text primary key,
    -- Odoo's write_date of the last fully mirrored second (naive UTC, as Odoo stores it).
    cursor_write_date   timestamp,
    -- Tie-breaker inside cursor_write_date for a paused backfill (ids of that second already done).
    cursor_id           bigint,
    -- 'backfill' until the first full pass over the model is done, then 'incremental'.
    phase               text not null default 'backfill' check (phase in ('backfill', 'incremental')),
    rows_mirrored       bigint not null default 0,
    last_success_at     timestamptz,
    last_reconcile_at   timestamptz,
    last_error          text,
    last_error_at       timestamptz,
    updated_at          timestamptz not null default now()
);

comment on table syncd.cdc_state is 'syncd: per-model CDC cursor and health (one row per [[cdc.models]] entry)';

-- ---------------------------------------------------------------------------------------- Outbox

create table syncd.outbox (
    id              bigint generated always as identity primary key,
    created_at      timestamptz not null default now(),
    model           text not null,
    op              text not null check (op in ('upsert', 'write', 'delete')),
    key             text,
    odoo_id         bigint,
    payload         jsonb not null default '{}'::jsonb,
    status          text not null default 'pending' check (status in ('pending', 'inflight', 'done', 'dead')),
    attempts        integer not null default 0,
    available_at    timestamptz not null default now(),
    -- The lease of the consumer that claimed the event; an expired lease makes it claimable again.
    locked_until    timestamptz,
    locked_by       text,
    last_error      text,
    done_at         timestamptz,
    result_id       bigint,
    constraint outbox_target check (
        (op = 'upsert' and key is not null)
        or (op = 'write' and odoo_id is not null)
        or (op = 'delete' and (key is not null or odoo_id is not null))
    ),
    constraint outbox_payload_object check (jsonb_typeof(payload) = 'object')
);

comment on table syncd.outbox is 'syncd: intents to apply to Odoo; write them with syncd.enqueue()';

-- The claim walks only claimable rows: pending ones by availability, and in-flight ones by lease.
create index outbox_pending_idx on syncd.outbox (available_at, id) where status = 'pending';
create index outbox_inflight_idx on syncd.outbox (locked_until) where status = 'inflight';
-- Per-record ordering: the earliest unfinished event of a record is found without a scan.
create index outbox_open_key_idx on syncd.outbox (model, key, id)
    where status in ('pending', 'inflight') and key is not null;
create index outbox_open_odoo_id_idx on syncd.outbox (model, odoo_id, id)
    where status in ('pending', 'inflight') and odoo_id is not null;
-- Housekeeping and dead-letter views.
create index outbox_done_at_idx on syncd.outbox (done_at) where status = 'done';
create index outbox_dead_idx on syncd.outbox (id) where status = 'dead';

-- The producer API (SPEC §3). Call it inside your own transaction:
--   select syncd.enqueue('res.partner', 'upsert', 'customer-42', '{"name": "Ada"}');
create function syncd.enqueue(
    model text, op text, key text, payload jsonb, odoo_id bigint default null
) returns bigint
language plpgsql
as $$
declare
    new_id bigint;
begin
    if enqueue.model is null or enqueue.model !~ '^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*$' then
        raise exception 'syncd.enqueue: model % is not an Odoo model name such as ''res.partner''',
            coalesce(quote_literal(enqueue.model), 'NULL')
            using errcode = '22023';
    end if;
    if enqueue.op is null or enqueue.op not in ('upsert', 'write', 'delete') then
        raise exception 'syncd.enqueue: op % is not one of ''upsert'', ''write'', ''delete''',
            coalesce(quote_literal(enqueue.op), 'NULL')
            using errcode = '22023';
    end if;
    if enqueue.op = 'upsert' and (enqueue.key is null or enqueue.key = '') then
        raise exception 'syncd.enqueue: op ''upsert'' needs a key (a stable external key of your choosing)'
            using errcode = '22023';
    end if;
    if enqueue.op = 'write' and enqueue.odoo_id is null then
        raise exception 'syncd.enqueue: op ''write'' needs odoo_id (the id of the Odoo record to update)'
            using errcode = '22023';
    end if;
    if enqueue.op = 'delete' and (enqueue.key is null or enqueue.key = '') and enqueue.odoo_id is null then
        raise exception 'syncd.enqueue: op ''delete'' needs a key or an odoo_id'
            using errcode = '22023';
    end if;
    if enqueue.payload is not null and jsonb_typeof(enqueue.payload) <> 'object' then
        raise exception 'syncd.enqueue: payload must be a JSON object of field values, not %',
            jsonb_typeof(enqueue.payload)
            using errcode = '22023';
    end if;
    if enqueue.op in ('upsert', 'write') and (enqueue.payload is null or enqueue.payload = '{}'::jsonb) then
        raise exception 'syncd.enqueue: op ''%'' needs a payload with at least one field', enqueue.op
            using errcode = '22023';
    end if;
    if enqueue.odoo_id is not null and enqueue.odoo_id <= 0 then
        raise exception 'syncd.enqueue: odoo_id must be a positive Odoo record id, not %', enqueue.odoo_id
            using errcode = '22023';
    end if;

    insert into syncd.outbox (model, op, key, odoo_id, payload)
    values (enqueue.model, enqueue.op, nullif(enqueue.key, ''), enqueue.odoo_id,
            coalesce(enqueue.payload, '{}'::jsonb))
    returning id into new_id;

    -- Identical notifications within one transaction are folded into one by PostgreSQL, so a
    -- transaction that enqueues a thousand events wakes the consumers once, at commit.
    perform pg_notify('syncd_outbox', '');
    return new_id;
end;
$$;

comment on function syncd.enqueue(text, text, text, jsonb, bigint) is
    'syncd: queue an upsert/write/delete of an Odoo record; call it in the same transaction as your own change';
