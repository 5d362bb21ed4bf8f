"""Whole-volume inference: the sliding-window Predictor and the folder runner."""

from __future__ import annotations

from volgan.inference.folder_runner import FileResult, FolderRunner, find_inputs, output_name
from volgan.inference.predictor import Predictor, load_generator_weights

__all__ = ["FileResult", "FolderRunner", "Predictor", "find_inputs", "load_generator_weights", "output_name"]
