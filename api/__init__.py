"""FastAPI app: alerts (list, ack), health; served to people, ERP/WMS and Grafana."""
