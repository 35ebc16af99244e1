"""Benchmarks that print figures; run them as scripts, they are not tests."""
