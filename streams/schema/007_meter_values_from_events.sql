-- meter_values rows are exploded inside the engine from the raw CALLs in `events`: the
-- projector inserts every event once and this view turns each sampled value of a 1.6
-- MeterValues/StopTransaction(transactionData) or 2.x MeterValues/TransactionEvent into a row.
-- Replay and redelivery insert the same events again: the rows get the same keys and version,
-- which meter_values (ReplacingMergeTree(version)) collapses. Keep the unit table equal to
-- streams/projections/units.py (tests/unit/streams/test_projections_meter_sql.py checks it).
CREATE MATERIALIZED VIEW IF NOT EXISTS meter_values_from_events TO meter_values AS
WITH
    JSONExtractRaw(raw, 4) AS payload,
    ocpp_version = '1.6' AS v16,
    JSONExtractString(sv, 'measurand') AS sv_measurand,
    JSONExtractString(sv, 'location') AS sv_location,
    JSONExtractString(sv, 'context') AS sv_context,
    if(v16, JSONExtractString(sv, 'unit'), JSONExtractString(sv, 'unitOfMeasure', 'unit')) AS sv_unit,
    if(v16, 0, ifNull(JSONExtract(sv, 'unitOfMeasure', 'multiplier', 'Nullable(Int8)'), 0)) AS sv_multiplier,
    JSONType(sv, 'value') AS value_type,
    if(sv_unit = '', 'Wh', sv_unit) AS unit_or_wh,
    multiIf(
        value_type = 'String', toFloat64OrNull(JSONExtractString(sv, 'value')),
        value_type IN ('Int64', 'UInt64', 'Double'), JSONExtract(sv, 'value', 'Nullable(Float64)'),
        NULL) AS number,
    if(isFinite(ifNull(number, 0)), number, NULL) AS finite,
    JSONType(payload, 'transactionId') AS id_type,
    multiIf(id_type = 'String', JSONExtractString(payload, 'transactionId'),
            id_type IN ('Int64', 'UInt64', 'Double'), JSONExtractRaw(payload, 'transactionId'),
            '') AS id_16,
    transform(unit_or_wh,
        ['Wh', 'kWh', 'varh', 'kvarh', 'W', 'kW', 'VA', 'kVA', 'var', 'kvar', 'A', 'V', 'K',
         'Celcius', 'Celsius', 'Fahrenheit', 'Percent', '%'],
        ['Wh', 'Wh', 'varh', 'varh', 'W', 'W', 'VA', 'VA', 'var', 'var', 'A', 'V', 'K',
         'Celsius', 'Celsius', 'Fahrenheit', 'Percent', 'Percent'],
        unit_or_wh) AS sv_base_unit,
    transform(unit_or_wh, ['kWh', 'kvarh', 'kW', 'kVA', 'kvar'], [1000., 1000., 1000., 1000., 1000.], 1.)
        * pow(10., sv_multiplier) AS factor
SELECT
    station_id,
    ifNull(parseDateTime64BestEffortOrNull(JSONExtractString(mv, 'timestamp'), 3, 'UTC'),
           toDateTime64(received_at, 3, 'UTC')) AS sampled_at,
    multiIf(v16, NULL, action = 'MeterValues', JSONExtract(payload, 'evseId', 'Nullable(Int32)'),
            JSONExtract(payload, 'evse', 'id', 'Nullable(Int32)')) AS evse_id,
    multiIf(v16 AND action = 'MeterValues', JSONExtract(payload, 'connectorId', 'Nullable(Int32)'),
            action = 'TransactionEvent', JSONExtract(payload, 'evse', 'connectorId', 'Nullable(Int32)'),
            NULL) AS connector_id,
    multiIf(v16, id_16, action = 'TransactionEvent',
            if(JSONType(payload, 'transactionInfo', 'transactionId') = 'String',
               JSONExtractString(payload, 'transactionInfo', 'transactionId'),
               JSONExtractRaw(payload, 'transactionInfo', 'transactionId')),
            '') AS transaction_id,
    if(sv_measurand = '', 'Energy.Active.Import.Register', sv_measurand) AS measurand,
    JSONExtractString(sv, 'phase') AS phase,
    if(sv_location = '', 'Outlet', sv_location) AS location,
    if(sv_context = '', 'Sample.Periodic', sv_context) AS context,
    unit_or_wh AS unit,
    sv_multiplier AS multiplier,
    if(value_type = 'String', JSONExtractString(sv, 'value'), JSONExtractRaw(sv, 'value')) AS raw_value,
    finite AS value,
    sv_base_unit AS base_unit,
    finite * factor AS value_base,
    stream_seq,
    stream_seq * 1024 + least(idx, 1023) AS version
FROM events
ARRAY JOIN JSONExtractArrayRaw(payload, if(action = 'StopTransaction', 'transactionData', 'meterValue')) AS mv
ARRAY JOIN JSONExtractArrayRaw(mv, 'sampledValue') AS sv
WHERE kind = 'frame' AND direction = 'in' AND message_type = 2 AND reason = ''
  AND ((ocpp_version = '1.6' AND action IN ('MeterValues', 'StopTransaction'))
       OR (ocpp_version != '1.6' AND action IN ('MeterValues', 'TransactionEvent')))
