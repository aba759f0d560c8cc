-- One row per fact about a transaction (1.6 Start/Stop and meter readings, 2.x TransactionEvent
-- and its energy register readings). The `transactions` view is an aggregation of these facts at
-- query time (streams/queries.py), so out-of-order, late and duplicate events need no state.
-- fact: start | start_id | stop | started | updated | ended | reading
-- role (readings): begin | end | sample
-- A 1.6 StartTransaction whose CALLRESULT was not in the same stream message has an empty
-- transaction_id and a correlation `corr` (session/unique id), resolved by its `start_id` fact.
CREATE TABLE IF NOT EXISTS transaction_facts
(
    station_id String,
    transaction_id String,
    stream_seq UInt64,
    idx UInt32,
    n UInt32,
    fact LowCardinality(String),
    ocpp_version LowCardinality(String),
    at DateTime64(3, 'UTC'),
    seq_no Nullable(Int64),
    offline UInt8,
    evse_id Nullable(Int32),
    connector_id Nullable(Int32),
    id_token String,
    meter_wh Nullable(Float64),
    role LowCardinality(String),
    stop_reason String,
    charging_state LowCardinality(String),
    corr String
)
ENGINE = ReplacingMergeTree
ORDER BY (station_id, transaction_id, stream_seq, idx, n);
