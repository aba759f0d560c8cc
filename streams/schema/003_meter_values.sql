-- One row per sampled value. The key is the reading's meaning (station, connector, time,
-- measurand, phase, location, context), not its position on the stream: a station re-sending a
-- MeterValues (retry after a lost answer, offline queue) collapses to one row; the version keeps
-- the latest delivery.
CREATE TABLE IF NOT EXISTS meter_values
(
    station_id String,
    sampled_at DateTime64(3, 'UTC'),
    evse_id Nullable(Int32),
    connector_id Nullable(Int32),
    transaction_id String,
    measurand LowCardinality(String),
    phase LowCardinality(String),
    location LowCardinality(String),
    context LowCardinality(String),
    unit LowCardinality(String),
    multiplier Int8,
    raw_value String,
    value Nullable(Float64),
    base_unit LowCardinality(String),
    value_base Nullable(Float64),
    stream_seq UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(sampled_at)
ORDER BY (station_id, sampled_at, ifNull(evse_id, -1), ifNull(connector_id, -1), transaction_id,
          measurand, phase, location, context);
