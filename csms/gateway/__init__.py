"""csms.gateway: sockets and sessions (picows on uvloop). Frames in, frames out.

Publishes only through the ``csms.ports.EventSink`` port; answers come from ``csms.handlers``.
Must not import: streams, nats, clickhouse_connect, csms.api, csms.app.
"""
