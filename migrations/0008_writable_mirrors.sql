-- 0008_writable_mirrors: apps write mirror tables; conflicts are detected field by field.
--
-- * syncd.outbox gains `base` (the field values the producer last saw: a write that has one is
--   checked against Odoo's current values before it is applied), `conflicts` (per field: base, app
--   and Odoo values of what did not match) and `source` (the writable mirror table an event came
--   from). A held conflict is status 'conflict': finished for its record's queue (what is queued
--   behind it goes on) and, like a dead event, kept until an operator or the app resolves it
--   (done_at stays null, so outbox_dead_idx finds it).
-- * syncd.enqueue() takes an optional `base` (backwards compatible).
-- * syncd.mirror_change() is the row trigger of a writable mirror table (created by the CDC with the
--   table, see syncd/cdc/schema.py): an app's UPDATE becomes an outbox `write` of the changed columns
--   with the old values as base (inserted, for the whole statement at once, by the table's statement
--   trigger), a DELETE a `delete` (the row stays, pending, until Odoo deleted the record), an INSERT
--   is refused. syncd's own writes (syncd.origin = 'cdc') pass through.
-- * syncd.outbox_settled() keeps a mirror row's sync state in step with its event, and asks the CDC
--   (syncd.mirror_refresh) to read the record again, so that the row ends equal to Odoo's.
-- * syncd.outbox_resolve(id, take) resolves a held conflict: 'app' writes the held values anyway,
--   'odoo' keeps Odoo's.

alter table syncd.outbox
    add column base jsonb,
    add column conflicts jsonb,
    add column source regclass,
    drop constraint outbox_status_check,
    add constraint outbox_status_check
        check (status in ('pending', 'inflight', 'done', 'dead', 'conflict')),
    add constraint outbox_base_object check (base is null or jsonb_typeof(base) = 'object');

comment on column syncd.outbox.base is
    'syncd: the field values the producer last saw; a write with a base is checked field by field against Odoo';
comment on column syncd.outbox.conflicts is
    'syncd: the fields whose Odoo value matched neither the base nor the new value: {field: {base, app, odoo}}';
comment on column syncd.outbox.source is
    'syncd: the writable mirror table whose row change made this event (null: syncd.enqueue)';

-- Records whose mirror row must be read again from Odoo (its change was applied, refused or held).
create table syncd.mirror_refresh (
    model        text not null,
    odoo_id      bigint not null,
    requested_at timestamptz not null default now(),
    primary key (model, odoo_id)
);

comment on table syncd.mirror_refresh is
    'syncd: mirror rows the CDC reads again from Odoo at its next poll (after their change settled)';

-- The new argument changes the function's signature: it is dropped and created again, and the
-- EXECUTE grants of the old one (an app role's, docs/supabase.md) are given to the new one.
create temporary table syncd_enqueue_grants on commit drop as
select a.grantee
from pg_proc p
cross join lateral aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) as a
where p.oid = 'syncd.enqueue(text, text, text, jsonb, bigint)'::regprocedure and a.privilege_type = 'EXECUTE';

drop function syncd.enqueue(text, text, text, jsonb, bigint);

create function syncd.enqueue(
    model text, op text, key text, payload jsonb, odoo_id bigint default null, base jsonb default null
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
    if enqueue.base is not null and jsonb_typeof(enqueue.base) <> 'object' then
        raise exception 'syncd.enqueue: base must be a JSON object of the field values you last saw, not %',
            jsonb_typeof(enqueue.base)
            using errcode = '22023';
    end if;
    if enqueue.base is not null and enqueue.op <> 'write' then
        raise exception 'syncd.enqueue: base goes with op ''write'' (the values of the record you last saw),'
            ' not with ''%''', enqueue.op
            using errcode = '22023';
    end if;

    insert into syncd.outbox (model, op, key, odoo_id, payload, base)
    values (enqueue.model, enqueue.op, nullif(enqueue.key, ''), enqueue.odoo_id,
            coalesce(enqueue.payload, '{}'::jsonb), nullif(enqueue.base, '{}'::jsonb))
    returning id into new_id;

    -- Identical notifications within one transaction are folded into one by PostgreSQL, so a
    -- transaction that enqueues a thousand events wakes the consumers once, at commit.
    perform pg_notify('syncd_outbox', '');
    return new_id;
end;
$$;

comment on function syncd.enqueue(text, text, text, jsonb, bigint, jsonb) is
    'syncd: queue an upsert/write/delete of an Odoo record; call it in the same transaction as your own change';

do $$
declare
    r record;
begin
    revoke all on function syncd.enqueue(text, text, text, jsonb, bigint, jsonb) from public;
    for r in select grantee from syncd_enqueue_grants loop
        if r.grantee = 0 then
            grant execute on function syncd.enqueue(text, text, text, jsonb, bigint, jsonb) to public;
        else
            execute format('grant execute on function syncd.enqueue(text, text, text, jsonb, bigint, jsonb) to %I',
                           pg_get_userbyid(r.grantee));
        end if;
    end loop;
end;
$$;

-- The id of an outbox event to come: the row trigger of a writable mirror table takes it for the row
-- (`_sync_event`), the table's statement trigger inserts the event with it. Security definer: an app
-- may insert into syncd.outbox (an identity column needs no grant on its sequence) but not nextval().
create function syncd.outbox_next_id() returns bigint
language sql volatile security definer set search_path = pg_catalog
as $$ select nextval('syncd.outbox_id_seq') $$;

comment on function syncd.outbox_next_id() is
    'syncd: the id of an outbox event to come (the writable mirror tables'' triggers)';

-- Fails the statement that changed a column an app may not change (called by the statement trigger of
-- a writable mirror table, whose checks are in SQL).
create function syncd.mirror_refused(tbl text, col text, why text) returns boolean
language plpgsql
as $$
begin
    raise exception 'syncd: column %.% cannot be changed: %', tbl, col, why using errcode = '0A000';
end;
$$;

-- The row trigger of a writable mirror table: BEFORE INSERT OR UPDATE OR DELETE, FOR EACH ROW, with the
-- model (tg_argv[0]) and the columns an app may not change, each with why (tg_argv[1], a JSON object).
-- An app's UPDATE of a row marks it pending with the id of its event to come; the table's statement
-- trigger (made by syncd/cdc/schema.py with the table, one per table because it names the columns)
-- then compares the old and new rows of the whole statement, refuses changes of locked field columns
-- and inserts all the events with one INSERT: an UPDATE of thousands of rows costs one statement in
-- the outbox, not one per row.
-- SECURITY DEFINER: an app needs only UPDATE/DELETE on the mirror table, not rights on syncd.outbox.
create function syncd.mirror_change() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
    model text := tg_argv[0];
    origin text := current_setting('syncd.origin', true);
    col text;
    ev bigint;
begin
    if origin = 'cdc' then  -- syncd's own write: the CDC, or a sync state following its event
        if tg_op = 'DELETE' then
            return old;
        end if;
        return new;
    end if;
    if tg_op = 'INSERT' then
        raise exception 'syncd: % is a mirror of Odoo''s %: rows cannot be inserted here', tg_table_name, model
            using errcode = '0A000',
                  hint = format('create the record with select syncd.enqueue(%L, ''upsert'', <a stable key of '
                                'yours>, <the fields as jsonb>); it appears here once Odoo created it', model);
    end if;
    if tg_op = 'DELETE' then
        if old."_deleted_at" is not null then
            return null;  -- already deleted in Odoo
        end if;
        insert into syncd.outbox (model, op, odoo_id, source)
        values (model, 'delete', old.id, tg_relid::regclass)
        returning id into ev;
        perform pg_notify('syncd_outbox', '');
        -- The row stays, pending, until Odoo deleted the record (then the CDC marks it deleted).
        perform set_config('syncd.origin', 'cdc', true);
        execute format('update %s set "_sync_state" = ''pending'', "_sync_event" = $1, "_sync_error" = null,'
                       ' "_raw" = "_raw" - ''write_date'' where id = $2', tg_relid::regclass) using ev, old.id;
        perform set_config('syncd.origin', coalesce(origin, ''), true);
        return null;
    end if;
    if new is not distinct from old then
        return new;  -- nothing changed: no event
    end if;
    -- The columns every writable table has; its field columns are checked by the statement trigger.
    col := case when new.id is distinct from old.id then 'id'
                when new."_synced_at" is distinct from old."_synced_at" then '_synced_at'
                when new."_deleted_at" is distinct from old."_deleted_at" then '_deleted_at'
                when new."_raw" is distinct from old."_raw" then '_raw'
                when new."_sync_state" is distinct from old."_sync_state" then '_sync_state'
                when new."_sync_error" is distinct from old."_sync_error" then '_sync_error'
                when new."_sync_event" is distinct from old."_sync_event" then '_sync_event' end;
    if col is not null then
        perform syncd.mirror_refused(tg_table_name, col, tg_argv[1]::jsonb ->> col);
    end if;
    if old."_deleted_at" is not null then
        raise exception 'syncd: % id % was deleted in Odoo: it cannot be changed', model, old.id
            using errcode = '0A000';
    end if;
    new."_sync_state" := 'pending';
    new."_sync_event" := syncd.outbox_next_id();
    new."_sync_error" := null;
    -- The row's values are no longer the record Odoo sent: the next read of it rewrites the row.
    new."_raw" := new."_raw" - 'write_date';
    return new;
end;
$$;

comment on function syncd.mirror_change() is
    'syncd: row trigger of a writable mirror table: UPDATE/DELETE by apps become outbox events, INSERT is refused';

-- A mirror-made event settled (done, dead, held) or went back to pending (redrive, resolve): its
-- row shows it, and the CDC reads the record again, so the row ends equal to Odoo's.
create function syncd.outbox_settled() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
    origin text := current_setting('syncd.origin', true);
    state text;
    -- an event redriven or resolved after a later change of its record: the row shows the later one's
    later boolean;
begin
    -- The mirror table was dropped since (an OID that names nothing): no row to keep in step, and the
    -- statement recording the event's outcome must not fail for it.
    if not exists (select from pg_catalog.pg_class where oid = coalesce(new.source, old.source)) then
        return null;
    end if;
    perform set_config('syncd.origin', 'cdc', true);
    if tg_op = 'UPDATE' and old.status in ('dead', 'conflict') then
        select exists (select from syncd.outbox l
                       where l.model = new.model and l.odoo_id = new.odoo_id and l.source = new.source
                         and l.id > new.id and l.status in ('pending', 'inflight', 'dead', 'conflict'))
        into later;
    end if;
    if tg_op = 'DELETE' then  -- discarded by an operator: never applied
        execute format('update %s set "_sync_state" = ''synced'', "_sync_event" = null, "_sync_error" = null'
                       ' where id = $1 and "_sync_event" = $2', old.source)
            using old.odoo_id, old.id;
        insert into syncd.mirror_refresh (model, odoo_id) values (old.model, old.odoo_id)
        on conflict (model, odoo_id) do update set requested_at = excluded.requested_at;
    elsif new.status = 'pending' then
        if not coalesce(later, false) then
            execute format('update %s set "_sync_state" = ''pending'', "_sync_event" = $1, "_sync_error" = null'
                           ' where id = $2 and ("_sync_event" is null or "_sync_event" = $1)', new.source)
                using new.id, new.odoo_id;
        end if;
    else
        state := case new.status when 'done' then 'synced' when 'dead' then 'failed' else 'conflict' end;
        execute format('update %s set "_sync_state" = $1, "_sync_event" = null, "_sync_error" = $2'
                       ' where id = $3 and ("_sync_event" = $4 or ("_sync_event" is null and $5))',
                       new.source)
            using state, case when new.status = 'done' then null else new.last_error end, new.odoo_id,
                  new.id, old.status in ('dead', 'conflict') and not coalesce(later, false);
        insert into syncd.mirror_refresh (model, odoo_id) values (new.model, new.odoo_id)
        on conflict (model, odoo_id) do update set requested_at = excluded.requested_at;
    end if;
    perform set_config('syncd.origin', coalesce(origin, ''), true);
    return null;
end;
$$;

create trigger outbox_settled after update of status on syncd.outbox
for each row
when (new.source is not null and old.status is distinct from new.status
      and (new.status in ('done', 'dead', 'conflict') or old.status in ('dead', 'conflict')))
execute function syncd.outbox_settled();

create trigger outbox_discarded after delete on syncd.outbox
for each row
when (old.source is not null and old.status in ('pending', 'inflight', 'dead', 'conflict'))
execute function syncd.outbox_settled();

-- Resolve a held conflict (status 'conflict'): 'app' writes the held values anyway (the event is
-- pending again, without a base, behind what its record has queued now); 'odoo' keeps Odoo's values
-- (the event is done). Returns the event's new status.
-- SECURITY DEFINER, and only for roles granted EXECUTE (syncd's own, and apps that may decide).
create function syncd.outbox_resolve(event_id bigint, take text) returns text
language plpgsql security definer set search_path = ''
as $$
declare
    ev syncd.outbox%rowtype;
begin
    if take is null or take not in ('app', 'odoo') then
        raise exception 'syncd.outbox_resolve: take must be ''app'' or ''odoo'', not %',
            coalesce(quote_literal(take), 'NULL') using errcode = '22023';
    end if;
    select * into ev from syncd.outbox where id = event_id for update;
    if not found then
        raise exception 'syncd.outbox_resolve: there is no outbox event %', event_id using errcode = '22023';
    end if;
    if ev.status <> 'conflict' then
        raise exception 'syncd.outbox_resolve: event % is %, not a held conflict', event_id, ev.status
            using errcode = '22023';
    end if;
    if take = 'app' then
        update syncd.outbox
        set status = 'pending', attempts = 0, leases_lost = 0, available_at = now(), base = null,
            payload = (select jsonb_object_agg(f, c -> 'app') from jsonb_each(ev.conflicts) as x(f, c)),
            last_error = 'resolved: the app''s values are written', waiting = false, linked = false,
            next_id = null
        where id = event_id;
        perform pg_notify('syncd_outbox', '');
        return 'pending';
    end if;
    update syncd.outbox
    set status = 'done', done_at = now(), last_error = 'resolved: Odoo''s values are kept'
    where id = event_id;
    return 'done';
end;
$$;

revoke all on function syncd.outbox_resolve(bigint, text) from public;

comment on function syncd.outbox_resolve(bigint, text) is
    'syncd: resolve a held conflict: take ''app'' (write the held values anyway) or ''odoo'' (keep Odoo''s)';
