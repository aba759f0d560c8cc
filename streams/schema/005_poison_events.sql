-- Events (or whole stream messages, idx = 4294967295) the projector could not fold: recorded with
-- the error and skipped, so one bad event never blocks the projector.
CREATE TABLE IF NOT EXISTS poison_events
(
    stream_seq UInt64,
    idx UInt32,
    subject String,
    error String,
    data String,
    recorded_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (stream_seq, idx);
