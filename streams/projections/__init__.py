"""projections: the stream folded into ClickHouse tables.

``fold`` (with ``transactions``, ``meter``, ``stations``, ``units``, ``rows``) is pure: a stream
message in, rows out, no I/O and no state between messages. ``projector`` is the runner: a
durable JetStream pull consumer that inserts the rows in batches and acks after the insert;
``rebuild`` replays the stream into fresh tables and swaps them in.

Must not import: the gateway side (``csms.gateway``, ``csms.handlers``, ``csms.protocol``,
``csms.app``, ``csms.cli``), picows, uvloop.
"""
