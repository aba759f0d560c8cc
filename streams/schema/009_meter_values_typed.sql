-- The meter-value view of 007, made cheaper: each CALL's payload is parsed ONCE, by one typed
-- JSONExtract of everything the rows need (007 parsed the payload, then every meterValue,
-- then every sampledValue three times: about 1.7x the engine time per row). The rows are the
-- same (tests/unit/streams/test_projections_meter_sql.py; a number's raw_value is the
-- engine's rendering of it, 1.50 -> '1.5', exactly as 007's JSONExtractRaw gave it).
-- Every field is Nullable in the typed extraction: a JSON null where a string is expected
-- would otherwise empty the whole array. What differs from 007 is only for payloads the
-- schema refuses anyway: a meterValue or sampledValue array holding a non-object gives no rows
-- (007 gave a row of defaults for it), and a JSON null value has raw_value '' (007: 'null').
-- 007's view is dropped here; the new view writes the same keys and versions, so rows made
-- before and after this file collapse in meter_values (ReplacingMergeTree(version)).
-- Keep the unit table equal to streams/projections/units.py (test_projections_meter_sql.py).
-- Cluster: as 007 (the view on each shard's local events table, TO the local meter_values).
CREATE MATERIALIZED VIEW IF NOT EXISTS meter_values_from_events_typed TO meter_values AS
WITH
    ifNull(if(v16, s.unit, s.unitOfMeasure.unit), '') AS unit_given,
    if(unit_given = '', 'Wh', unit_given) AS unit_or_wh,
    if(v16, 0, ifNull(s.unitOfMeasure.multiplier, 0)) AS sv_multiplier,
    ifNull(s.value, '') AS raw,
    toFloat64OrNull(raw) AS number,
    if(isFinite(ifNull(number, 0)), number, NULL) AS finite
SELECT
    station_id,
    sampled_at,
    evse_id,
    connector_id,
    transaction_id,
    if(ifNull(s.measurand, '') = '', 'Energy.Active.Import.Register', s.measurand) AS measurand,
    ifNull(s.phase, '') AS phase,
    if(ifNull(s.location, '') = '', 'Outlet', s.location) AS location,
    if(ifNull(s.context, '') = '', 'Sample.Periodic', s.context) AS context,
    unit_or_wh AS unit,
    sv_multiplier AS multiplier,
    raw AS raw_value,
    finite AS value,
    transform(unit_or_wh,
        ['Wh', 'kWh', 'varh', 'kvarh', 'W', 'kW', 'VA', 'kVA', 'var', 'kvar', 'A', 'V', 'K',
         'Celcius', 'Celsius', 'Fahrenheit', 'Percent', '%'],
        ['Wh', 'Wh', 'varh', 'varh', 'W', 'W', 'VA', 'VA', 'var', 'var', 'A', 'V', 'K',
         'Celsius', 'Celsius', 'Fahrenheit', 'Percent', 'Percent'],
        unit_or_wh) AS base_unit,
    finite * (transform(unit_or_wh, ['kWh', 'kvarh', 'kW', 'kVA', 'kvar'], [1000., 1000., 1000., 1000., 1000.], 1.)
        * pow(10., sv_multiplier)) AS value_base,
    stream_seq,
    version
FROM
(
    SELECT
        station_id, evse_id, connector_id, transaction_id, stream_seq, version, v16,
        ifNull(parseDateTime64BestEffortOrNull(mv.timestamp, 3, 'UTC'), received_ms) AS sampled_at,
        mv.sampledValue AS svs
    FROM
(
    SELECT
        station_id,
        toDateTime64(received_at, 3, 'UTC') AS received_ms,
        stream_seq,
        stream_seq * 1024 + least(idx, 1023) AS version,
        ocpp_version = '1.6' AS v16,
        JSONExtract(raw, 4, 'Tuple(connectorId Nullable(Int32), evseId Nullable(Int32), evse Tuple(id Nullable(Int32), connectorId Nullable(Int32)), transactionId Nullable(String), transactionInfo Tuple(transactionId Nullable(String)), meterValue Array(Tuple(timestamp Nullable(String), sampledValue Array(Tuple(value Nullable(String), measurand Nullable(String), phase Nullable(String), location Nullable(String), context Nullable(String), unit Nullable(String), unitOfMeasure Tuple(unit Nullable(String), multiplier Nullable(Int8)))))), transactionData Array(Tuple(timestamp Nullable(String), sampledValue Array(Tuple(value Nullable(String), measurand Nullable(String), phase Nullable(String), location Nullable(String), context Nullable(String), unit Nullable(String), unitOfMeasure Tuple(unit Nullable(String), multiplier Nullable(Int8)))))))') AS p,
        multiIf(v16, NULL, action = 'MeterValues', p.evseId, p.evse.id) AS evse_id,
        multiIf(v16 AND action = 'MeterValues', p.connectorId,
                action = 'TransactionEvent', p.evse.connectorId,
                NULL) AS connector_id,
        multiIf(v16, if(JSONType(raw, 4, 'transactionId') IN ('String', 'Int64', 'UInt64', 'Double'), ifNull(p.transactionId, ''), ''),
                action = 'TransactionEvent', ifNull(p.transactionInfo.transactionId, ''),
                '') AS transaction_id,
        if(action = 'StopTransaction', p.transactionData, p.meterValue) AS mvs
    FROM events
    WHERE kind = 'frame' AND direction = 'in' AND message_type = 2 AND reason = ''
      AND ((ocpp_version = '1.6' AND action IN ('MeterValues', 'StopTransaction'))
           OR (ocpp_version != '1.6' AND action IN ('MeterValues', 'TransactionEvent')))
)
    ARRAY JOIN mvs AS mv
)
ARRAY JOIN svs AS s;

DROP VIEW IF EXISTS meter_values_from_events;
