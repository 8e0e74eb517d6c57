"""Distributed experiment runner: Hydra configs -> Ray Tune trials -> MLflow runs -> ensemble.

The only package that imports Hydra, Ray and MLflow. Entry point: ``python -m runner``.
"""

import time
from pathlib import Path

IMPORTED_AT = time.time()  # about when ``python -m runner`` started: its first import
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"  # the Hydra config tree
