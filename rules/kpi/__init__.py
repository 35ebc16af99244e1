"""Inventory-health and alert-response KPIs: formulas and the schedule that computes them."""
