"""streams: durability and read models. Every OCPP frame becomes an immutable event on NATS
JetStream; projections fold the stream into ClickHouse views.

Must not import: ``csms.gateway``, ``csms._core``, picows, uvloop.
"""
