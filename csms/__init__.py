"""csms: the online CSMS process (gateway, handlers, operator API) over the Rust core.

Package map: ``csms._core`` (Rust, private) is reached only through ``csms.protocol``, which does
no I/O. Nothing in ``csms.protocol`` imports ``streams`` or any network or event-loop module.
"""

__version__ = "0.1.0"
