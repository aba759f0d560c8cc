-- Station state as narrow fact tables; `station_status` is read from them with argMax.
-- Every StatusNotification (history: fault reports; latest per connector: status).
CREATE TABLE IF NOT EXISTS status_notifications
(
    station_id String,
    at DateTime64(3, 'UTC'),
    stream_seq UInt64,
    idx UInt32,
    evse_id Nullable(Int32),
    connector_id Nullable(Int32),
    status LowCardinality(String),
    error_code LowCardinality(String),
    vendor_error_code String,
    info String
)
ENGINE = ReplacingMergeTree
ORDER BY (station_id, at, stream_seq, idx);

-- Every BootNotification (vendor, model, firmware as the station reported them).
CREATE TABLE IF NOT EXISTS station_boots
(
    station_id String,
    at DateTime64(3, 'UTC'),
    stream_seq UInt64,
    idx UInt32,
    vendor String,
    model String,
    firmware String,
    serial_number String
)
ENGINE = ReplacingMergeTree
ORDER BY (station_id, at, stream_seq, idx);

-- Connection opened / closed, per gateway session.
CREATE TABLE IF NOT EXISTS station_sessions
(
    station_id String,
    session_id String,
    event LowCardinality(String),
    at DateTime64(9, 'UTC'),
    node_id LowCardinality(String),
    reason String
)
ENGINE = ReplacingMergeTree(at)
ORDER BY (station_id, session_id, event);

-- Last time anything was heard from (or sent to) a station: one row per station survives merges
-- (the version is the time itself, so the result does not depend on batch boundaries).
CREATE TABLE IF NOT EXISTS station_seen
(
    station_id String,
    last_seen_at DateTime64(9, 'UTC')
)
ENGINE = ReplacingMergeTree(last_seen_at)
ORDER BY station_id;
