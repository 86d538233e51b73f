"""Benchmarks behind `sensorhub bench` (peers are the optional [bench] extras)."""
