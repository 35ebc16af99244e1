"""Edge gateway agent: reads devices that do not speak MQTT (Modbus load cells via pymodbus,
LLRP readers via sllurp), filters at the edge (weight settling, deadband, RFID dedup),
stores and forwards through outages, and publishes the canonical v1 contract with birth and
Last Will. Devices that speak MQTT natively (Impinj, Zebra, Tasmota, Shelly) need no agent:
ingest reads their own formats.
"""
