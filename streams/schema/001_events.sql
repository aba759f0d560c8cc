-- The raw event store: every envelope of the stream, one row per event.
-- Key (stream_seq, idx) is the event's identity on the stream: a redelivered or replayed
-- message writes the same rows, which ReplacingMergeTree collapses (queries read FINAL).
-- Ordered by station then time for per-station and per-time reads.
CREATE TABLE IF NOT EXISTS events
(
    station_id String,
    received_at DateTime64(9, 'UTC'),
    stream_seq UInt64,
    idx UInt32,
    event_id String,
    kind LowCardinality(String),
    ocpp_version LowCardinality(String),
    direction LowCardinality(String),
    message_type UInt8,
    unique_id String,
    action LowCardinality(String),
    raw String CODEC(ZSTD(3)),
    node_id LowCardinality(String),
    session_id String,
    seq UInt64,
    reason String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (station_id, received_at, stream_seq, idx);
