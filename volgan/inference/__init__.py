"""Whole-volume inference: the sliding-window Predictor and the batch runner."""

from __future__ import annotations

from volgan.inference.batch_runner import BatchRunner, FileResult
from volgan.inference.inputs import output_name, resolve_inputs
from volgan.inference.predictor import Predictor, load_generator_weights

__all__ = ["BatchRunner", "FileResult", "Predictor", "load_generator_weights", "output_name", "resolve_inputs"]
