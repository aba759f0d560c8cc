-- meter_values rows are exploded inside the engine from the raw CALLs in `events`: the
-- projector inserts every event once and this view turns each sampled value of a 1.6
-- MeterValues/StopTransaction(transactionData) or 2.x MeterValues/TransactionEvent into a row.
-- Replay and redelivery insert the same events again: the rows get the same keys and version,
-- which meter_values (ReplacingMergeTree(version)) collapses. Keep the unit table equal to
-- streams/projections/units.py (tests/unit/streams/test_projections_meter_sql.py checks it).
-- Three levels so that each JSON is parsed once: the payload per event (innermost), the
-- timestamp per meterValue, the fields of each sampledValue (one typed extraction).
CREATE MATERIALIZED VIEW IF NOT EXISTS meter_values_from_events TO meter_values AS
WITH
    if(v16, s.5, s.6.1) AS unit_given,
    if(unit_given = '', 'Wh', unit_given) AS unit_or_wh,
    if(v16, 0, ifNull(s.6.2, 0)) AS sv_multiplier,
    JSONType(sv, 'value') AS value_type,
    if(value_type = 'String', JSONExtractString(sv, 'value'), JSONExtractRaw(sv, 'value')) AS raw,
    if(value_type IN ('String', 'Int64', 'UInt64', 'Double'), toFloat64OrNull(raw), NULL) AS number,
    if(isFinite(ifNull(number, 0)), number, NULL) AS finite
SELECT
    station_id,
    sampled_at,
    evse_id,
    connector_id,
    transaction_id,
    if(s.1 = '', 'Energy.Active.Import.Register', s.1) AS measurand,
    s.2 AS phase,
    if(s.3 = '', 'Outlet', s.3) AS location,
    if(s.4 = '', 'Sample.Periodic', s.4) AS context,
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
        ifNull(parseDateTime64BestEffortOrNull(JSONExtractString(mv, 'timestamp'), 3, 'UTC'),
               received_ms) AS sampled_at,
        JSONExtractArrayRaw(mv, 'sampledValue') AS svs
    FROM
    (
        SELECT
            station_id,
            toDateTime64(received_at, 3, 'UTC') AS received_ms,
            stream_seq,
            stream_seq * 1024 + least(idx, 1023) AS version,
            ocpp_version = '1.6' AS v16,
            JSONExtractRaw(raw, 4) AS payload,
            JSONType(payload, 'transactionId') AS id_type,
            multiIf(v16, NULL, action = 'MeterValues', JSONExtract(payload, 'evseId', 'Nullable(Int32)'),
                    JSONExtract(payload, 'evse', 'id', 'Nullable(Int32)')) AS evse_id,
            multiIf(v16 AND action = 'MeterValues', JSONExtract(payload, 'connectorId', 'Nullable(Int32)'),
                    action = 'TransactionEvent', JSONExtract(payload, 'evse', 'connectorId', 'Nullable(Int32)'),
                    NULL) AS connector_id,
            multiIf(v16 AND id_type = 'String', JSONExtractString(payload, 'transactionId'),
                    v16 AND id_type IN ('Int64', 'UInt64', 'Double'), JSONExtractRaw(payload, 'transactionId'),
                    v16, '',
                    action = 'TransactionEvent',
                    if(JSONType(payload, 'transactionInfo', 'transactionId') = 'String',
                       JSONExtractString(payload, 'transactionInfo', 'transactionId'),
                       JSONExtractRaw(payload, 'transactionInfo', 'transactionId')),
                    '') AS transaction_id,
            JSONExtractArrayRaw(payload, if(action = 'StopTransaction', 'transactionData', 'meterValue')) AS mvs
        FROM events
        WHERE kind = 'frame' AND direction = 'in' AND message_type = 2 AND reason = ''
          AND ((ocpp_version = '1.6' AND action IN ('MeterValues', 'StopTransaction'))
               OR (ocpp_version != '1.6' AND action IN ('MeterValues', 'TransactionEvent')))
    )
    ARRAY JOIN mvs AS mv
)
ARRAY JOIN svs AS sv
ARRAY JOIN [JSONExtract(sv, 'Tuple(measurand String, phase String, location String, context String, unit String, unitOfMeasure Tuple(unit String, multiplier Nullable(Int8)))')] AS s
