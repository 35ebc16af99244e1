"""Rules engine: inventory state, reorder/expiry/ageing rules, anomaly detectors, alerts."""
