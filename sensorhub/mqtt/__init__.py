"""MQTT: the versioned topic tree, the result publisher (sink), the raw-packet gateway and worker source."""
