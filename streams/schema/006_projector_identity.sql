-- Who this store is, for the stream: the projector's durable consumer is named after it
-- (csms-projections-<id>), so a fresh store (a wiped data dir, a new server) gets a fresh
-- consumer that replays the whole stream, and every store fed from one NATS gets all of it.
-- Several projectors writing into one ClickHouse server share the id, hence the consumer.
-- The first id by (created_at, id) wins if two processes create one at once.
CREATE TABLE IF NOT EXISTS projector_identity
(
    id String,
    created_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (created_at, id);
