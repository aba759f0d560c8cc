"""csms.api: the operator HTTP API (litestar): stations, commands, tokens, keys, health, metrics.

Talks to the rest of the system only through NATS adapters from ``streams`` (presence, command
router and log, key-value buckets) handed over in :class:`csms.api.services.ApiServices`, and
validates command payloads with ``csms.protocol`` before anything is sent. Must not import
``csms.gateway``, ``csms.handlers`` or ``csms.app``: the API runs beside a gateway in
``csms serve`` and alone in ``csms api``, unchanged.
"""
