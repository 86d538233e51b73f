"""sensorhub: real-time knee kinematics and feedback from thigh and shank IMUs."""

__version__ = "0.1.0"
