"""Fleet simulator: many OCPP 1.6 / 2.0.1 / 2.1 stations (picows clients on uvloop) behaving
like chargers (boot, status, authorize, transactions with meter values, heartbeats, reconnect
with back-off, retried and offline-queued transaction messages, answers to CSMS commands),
driven by the scenarios in ``bench/scenarios/*.toml``.

    python -m bench.fleet --url ws://host:port/ocpp --stations N --scenario steady
    csms simulate ...   (the same, from the csms command line)
    python -m bench.fleet.throughput --url ... --stations N --version 2.0.1
                        (the throughput scenario's lean stations: the load benchmark's driver)

It talks to a CSMS only over the wire: it must not import ``csms`` (except ``csms.protocol`` in
tests), so that it measures any CSMS the same way.
"""
