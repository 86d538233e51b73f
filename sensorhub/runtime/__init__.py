"""Composition root: wires sources, stages and sinks; owns every task."""
