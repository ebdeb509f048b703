-- 0005_cdc_replicas: the replicas that run CDC right now, so that they share the models.
-- Each `syncd run` renews its row every cdc.interval_seconds; a row whose seen_until has passed
-- belongs to a replica that stopped or died. With R live replicas and M models, each polls M / R
-- of them (the first M mod R by holder name one more) and hands over the rest; a model whose
-- replica dies is taken over as before (advisory lock released, or lease run out). Plain rows: it
-- works through any pooler.
create table syncd.cdc_replicas (
    holder     text primary key,
    seen_until timestamptz not null
);

comment on table syncd.cdc_replicas is
    'syncd: replicas running CDC (alive while seen_until > now()); they share the models among them';
