"""The fault battery (issue 7, reliability.md §5.0/§5.4): simulated stations against real
``csms serve``, nats-server and projector processes, faults injected at seeded random times, and
a checker of the invariants I1-I6 after healing. ``python -m tests.faults --help``; ``make faults``.

Owns: its own station driver (raw OCPP-J over ``websockets``, logging every CALL, attempt and
answer with wall-clock times), the process handles (nats-server single node or a 3-node cluster,
``csms serve``, ``csms projections run``), the checker and the report. It talks to the CSMS only
as a station, through NATS (reading the stream) and through ``csms query``; it imports
``streams`` for the event envelope and subjects, never the gateway.
"""
