"""Continuous training: triggers, the controller that acts on them, and policy replay."""
