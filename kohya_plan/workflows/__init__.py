"""Workflows built on check, make and launch: lr-find, TensorBoard, importers, sweeps."""
