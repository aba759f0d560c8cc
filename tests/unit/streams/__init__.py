"""Unit tests: no sockets, no servers."""
