"""Sinks: where results and raw packets go (recorder, dashboard, MQTT, InfluxDB, history store)."""
