-- 0009_cdc_light_polls: what lets a poll cost Odoo little.
--
-- * The model's fields as Odoo last described them (fields_get), so that a poll, a restart or a
--   `syncd --once` does not ask Odoo again: the schema is learned at start when none is stored,
--   when Odoo refuses a field, and on a slow timer (`cdc.schema_refresh_seconds`).
-- * When the last webhook hint for the model arrived (`syncd odoo webhooks status`).
alter table syncd.cdc_state
    add column odoo_fields     jsonb,
    add column odoo_fields_at  timestamptz,
    add column last_hint_at    timestamptz;

comment on column syncd.cdc_state.odoo_fields is
    'syncd: the fields_get answer the mirror table was built from (type, store, string, relation, readonly)';
comment on column syncd.cdc_state.last_hint_at is
    'syncd: when the last webhook hint for this model arrived (any replica)';
