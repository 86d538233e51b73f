"""Sources of raw packets: BLE, MQTT ingest and replay of raw recordings."""
