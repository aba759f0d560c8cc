-- The `transactions` view pre-aggregated as facts arrive, so reports over months of history
-- read one row of partial aggregates per transaction (and part) instead of every fact.
-- Every aggregate here is idempotent (any, min, max, argMin, argMax): a fact inserted twice
-- (redelivery, replay, a crash between insert and ack) leaves each result unchanged, so the
-- pre-aggregation is exactly what streams/queries.py computed from the facts at query time.
-- The argMin/argMax keys are the view's tuples (at, seqNo or -1, stream_seq, idx, n), with the
-- begin/end flag first for meter start/stop, packed into one UInt256 (each part offset to be
-- non-negative and given its own bits: 1 + 42 + 64 + 64 + 32 + 32), so they compare the same
-- and merge as fast as a number.
-- A 1.6 start whose id came in a later stream message has transaction_id = '' and is kept
-- under its corr; the query joins it to its id (transaction_start_ids) and merges the states.
CREATE TABLE IF NOT EXISTS transaction_agg
ENGINE = AggregatingMergeTree
ORDER BY (station_id, transaction_id, corr_key)
EMPTY AS
SELECT
    station_id,
    transaction_id,
    if(transaction_id = '', corr, '') AS corr_key,
    anyState(ocpp_version) AS ocpp_version_agg,
    anyState(evse_id) AS evse_id_agg,
    anyState(connector_id) AS connector_id_agg,
    argMinIfState(id_token, (bitShiftLeft(toUInt256(toInt128(toUnixTimestamp64Milli(at)) + 2199023255552), 192) + bitShiftLeft(toUInt256(toInt128(ifNull(seq_no, -1)) + toInt128('9223372036854775808')), 128) + bitShiftLeft(toUInt256(stream_seq), 64) + bitShiftLeft(toUInt256(idx), 32) + toUInt256(n)), id_token != '') AS id_token_agg,
    maxState(fact IN ('start', 'started')) AS has_start_agg,
    maxState(fact IN ('stop', 'ended')) AS has_stop_agg,
    minIfState(at, fact IN ('start', 'started')) AS start_at_agg,
    maxIfState(at, fact IN ('stop', 'ended')) AS stop_at_agg,
    minState(at) AS first_at_agg,
    argMinIfState(meter_wh, bitShiftLeft(toUInt256(role != 'begin'), 234) + (bitShiftLeft(toUInt256(toInt128(toUnixTimestamp64Milli(at)) + 2199023255552), 192) + bitShiftLeft(toUInt256(toInt128(ifNull(seq_no, -1)) + toInt128('9223372036854775808')), 128) + bitShiftLeft(toUInt256(stream_seq), 64) + bitShiftLeft(toUInt256(idx), 32) + toUInt256(n)),
                  role != 'end' AND meter_wh IS NOT NULL) AS meter_start_wh_agg,
    argMaxIfState(meter_wh, bitShiftLeft(toUInt256(role = 'end'), 234) + (bitShiftLeft(toUInt256(toInt128(toUnixTimestamp64Milli(at)) + 2199023255552), 192) + bitShiftLeft(toUInt256(toInt128(ifNull(seq_no, -1)) + toInt128('9223372036854775808')), 128) + bitShiftLeft(toUInt256(stream_seq), 64) + bitShiftLeft(toUInt256(idx), 32) + toUInt256(n)),
                  role != 'begin' AND meter_wh IS NOT NULL) AS meter_stop_wh_agg,
    argMaxIfState(stop_reason, (bitShiftLeft(toUInt256(toInt128(toUnixTimestamp64Milli(at)) + 2199023255552), 192) + bitShiftLeft(toUInt256(toInt128(ifNull(seq_no, -1)) + toInt128('9223372036854775808')), 128) + bitShiftLeft(toUInt256(stream_seq), 64) + bitShiftLeft(toUInt256(idx), 32) + toUInt256(n)), stop_reason != '')
        AS stop_reason_agg,
    maxState(offline) AS offline_agg
FROM transaction_facts
WHERE fact != 'start_id'
GROUP BY station_id, transaction_id, corr_key;

CREATE MATERIALIZED VIEW IF NOT EXISTS transaction_agg_from_facts TO transaction_agg AS
SELECT
    station_id,
    transaction_id,
    if(transaction_id = '', corr, '') AS corr_key,
    anyState(ocpp_version) AS ocpp_version_agg,
    anyState(evse_id) AS evse_id_agg,
    anyState(connector_id) AS connector_id_agg,
    argMinIfState(id_token, (bitShiftLeft(toUInt256(toInt128(toUnixTimestamp64Milli(at)) + 2199023255552), 192) + bitShiftLeft(toUInt256(toInt128(ifNull(seq_no, -1)) + toInt128('9223372036854775808')), 128) + bitShiftLeft(toUInt256(stream_seq), 64) + bitShiftLeft(toUInt256(idx), 32) + toUInt256(n)), id_token != '') AS id_token_agg,
    maxState(fact IN ('start', 'started')) AS has_start_agg,
    maxState(fact IN ('stop', 'ended')) AS has_stop_agg,
    minIfState(at, fact IN ('start', 'started')) AS start_at_agg,
    maxIfState(at, fact IN ('stop', 'ended')) AS stop_at_agg,
    minState(at) AS first_at_agg,
    argMinIfState(meter_wh, bitShiftLeft(toUInt256(role != 'begin'), 234) + (bitShiftLeft(toUInt256(toInt128(toUnixTimestamp64Milli(at)) + 2199023255552), 192) + bitShiftLeft(toUInt256(toInt128(ifNull(seq_no, -1)) + toInt128('9223372036854775808')), 128) + bitShiftLeft(toUInt256(stream_seq), 64) + bitShiftLeft(toUInt256(idx), 32) + toUInt256(n)),
                  role != 'end' AND meter_wh IS NOT NULL) AS meter_start_wh_agg,
    argMaxIfState(meter_wh, bitShiftLeft(toUInt256(role = 'end'), 234) + (bitShiftLeft(toUInt256(toInt128(toUnixTimestamp64Milli(at)) + 2199023255552), 192) + bitShiftLeft(toUInt256(toInt128(ifNull(seq_no, -1)) + toInt128('9223372036854775808')), 128) + bitShiftLeft(toUInt256(stream_seq), 64) + bitShiftLeft(toUInt256(idx), 32) + toUInt256(n)),
                  role != 'begin' AND meter_wh IS NOT NULL) AS meter_stop_wh_agg,
    argMaxIfState(stop_reason, (bitShiftLeft(toUInt256(toInt128(toUnixTimestamp64Milli(at)) + 2199023255552), 192) + bitShiftLeft(toUInt256(toInt128(ifNull(seq_no, -1)) + toInt128('9223372036854775808')), 128) + bitShiftLeft(toUInt256(stream_seq), 64) + bitShiftLeft(toUInt256(idx), 32) + toUInt256(n)), stop_reason != '')
        AS stop_reason_agg,
    maxState(offline) AS offline_agg
FROM transaction_facts
WHERE fact != 'start_id'
GROUP BY station_id, transaction_id, corr_key;

-- Our 1.6 StartTransaction answers stored apart from their CALL: corr -> transaction id.
CREATE TABLE IF NOT EXISTS transaction_start_ids
(
    station_id String,
    corr String,
    transaction_id String
)
ENGINE = ReplacingMergeTree
ORDER BY (station_id, corr);

CREATE MATERIALIZED VIEW IF NOT EXISTS transaction_start_ids_from_facts TO transaction_start_ids AS
SELECT station_id, corr, transaction_id FROM transaction_facts WHERE fact = 'start_id';

-- Facts stored before this file was applied (a store that already has history).
INSERT INTO transaction_agg
SELECT
    station_id,
    transaction_id,
    if(transaction_id = '', corr, '') AS corr_key,
    anyState(ocpp_version),
    anyState(evse_id),
    anyState(connector_id),
    argMinIfState(id_token, (bitShiftLeft(toUInt256(toInt128(toUnixTimestamp64Milli(at)) + 2199023255552), 192) + bitShiftLeft(toUInt256(toInt128(ifNull(seq_no, -1)) + toInt128('9223372036854775808')), 128) + bitShiftLeft(toUInt256(stream_seq), 64) + bitShiftLeft(toUInt256(idx), 32) + toUInt256(n)), id_token != ''),
    maxState(fact IN ('start', 'started')),
    maxState(fact IN ('stop', 'ended')),
    minIfState(at, fact IN ('start', 'started')),
    maxIfState(at, fact IN ('stop', 'ended')),
    minState(at),
    argMinIfState(meter_wh, bitShiftLeft(toUInt256(role != 'begin'), 234) + (bitShiftLeft(toUInt256(toInt128(toUnixTimestamp64Milli(at)) + 2199023255552), 192) + bitShiftLeft(toUInt256(toInt128(ifNull(seq_no, -1)) + toInt128('9223372036854775808')), 128) + bitShiftLeft(toUInt256(stream_seq), 64) + bitShiftLeft(toUInt256(idx), 32) + toUInt256(n)),
                  role != 'end' AND meter_wh IS NOT NULL),
    argMaxIfState(meter_wh, bitShiftLeft(toUInt256(role = 'end'), 234) + (bitShiftLeft(toUInt256(toInt128(toUnixTimestamp64Milli(at)) + 2199023255552), 192) + bitShiftLeft(toUInt256(toInt128(ifNull(seq_no, -1)) + toInt128('9223372036854775808')), 128) + bitShiftLeft(toUInt256(stream_seq), 64) + bitShiftLeft(toUInt256(idx), 32) + toUInt256(n)),
                  role != 'begin' AND meter_wh IS NOT NULL),
    argMaxIfState(stop_reason, (bitShiftLeft(toUInt256(toInt128(toUnixTimestamp64Milli(at)) + 2199023255552), 192) + bitShiftLeft(toUInt256(toInt128(ifNull(seq_no, -1)) + toInt128('9223372036854775808')), 128) + bitShiftLeft(toUInt256(stream_seq), 64) + bitShiftLeft(toUInt256(idx), 32) + toUInt256(n)), stop_reason != ''),
    maxState(offline)
FROM transaction_facts
WHERE fact != 'start_id'
GROUP BY station_id, transaction_id, corr_key;

INSERT INTO transaction_start_ids
SELECT station_id, corr, transaction_id FROM transaction_facts WHERE fact = 'start_id';
