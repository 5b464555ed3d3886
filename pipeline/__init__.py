"""Deepfake Lens pipeline: ingest labelled face folders, train and evaluate a zoo of detectors."""
