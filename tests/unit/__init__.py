"""Test and benchmark code; see the package docstrings of csms and streams for the rules."""
