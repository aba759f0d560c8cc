"""csms.handlers: the CSMS's answers. OCPP payload (per version) → response payload.

Pure and I/O-free: a handler gets a :class:`~csms.handlers.context.HandlerContext` (ports,
clock, settings) and a validated payload, and returns the response payload. Durability is the
gateway's job (every frame is an event before it is answered); routing is one explicit table in
:mod:`csms.handlers.routing`.

Must not import: csms.gateway, streams, picows, nats, clickhouse_connect.
"""
