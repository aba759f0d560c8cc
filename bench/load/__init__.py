"""Load benchmark: simulated stations against our CSMS, the ocpp-package reference and a bare
picows echo server, each measured side by side in one run (``python -m bench.load``)."""
