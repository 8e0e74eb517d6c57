"""Distributed experiment runner: Hydra configs -> Ray Tune trials -> MLflow runs -> ensemble.

The only package that imports Hydra, Ray and MLflow. Entry point: ``python -m runner``.
"""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"  # the Hydra config tree
