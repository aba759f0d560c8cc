"""csms.domain: version-neutral, pure facts and values: what happened on a station connection.

Must not import: csms.protocol, csms._core, csms.gateway, streams, picows, nats, asyncio.
"""
