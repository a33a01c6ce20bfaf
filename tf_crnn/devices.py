"""What runs the work: one line for the logs, so that nobody trains on the CPU by accident
(the CLI hides TensorFlow's own start-up messages, CUDA errors included)."""

from __future__ import annotations

import os
from pathlib import Path

CPU_FEATURES = (("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
"""CPU flags worth naming, best first: bfloat16 and wide vectors speed training up."""


def cpu_features(cpuinfo: str | None = None) -> str | None:
    """The best of ``CPU_FEATURES`` this CPU has (from ``/proc/cpuinfo``), or None."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(errors="replace") if path.is_file() else ""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return next((name for flag, name in CPU_FEATURES if flag in flags), None)


def describe_device() -> str:
    """``GPU:0 NVIDIA H100 80GB HBM3`` (each GPU TensorFlow sees), else ``CPU: 2 cores, AVX-512 BF16``."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for i, gpu in enumerate(gpus):
            details = tf.config.experimental.get_device_details(gpu)
            names.append(f"GPU:{i} {details.get('device_name', gpu.name)}")
        return ", ".join(names)
    features = cpu_features()
    return f"CPU: {os.cpu_count()} cores" + (f", {features}" if features else "") + " (no GPU found)"


__all__ = ["cpu_features", "describe_device"]
