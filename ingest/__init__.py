"""Ingest: MQTT consumer, payload adapters, validation, dead-letter, batching InfluxDB writer."""
