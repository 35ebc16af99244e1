"""Shared contract of StockSense: topics, payload models, readings, settings and store clients.

Nothing in here imports a service package (ingest, rules, api, ...).
"""
