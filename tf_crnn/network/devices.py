"""What runs the work: one line for the logs, so that nobody trains on the CPU by accident
(the CLI hides TensorFlow's own start-up messages, CUDA errors included)."""

from __future__ import annotations

import os
from pathlib import Path

CPU_FEATURES = (("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
"""CPU flags worth naming, best first: bfloat16 and wide vectors speed training up."""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (from ``/proc/cpuinfo``)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(errors="replace") if path.is_file() else ""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_features(cpuinfo: str | None = None) -> str | None:
    """The best of ``CPU_FEATURES`` this CPU has, or None."""
    flags = cpu_flags(cpuinfo)
    return next((name for flag, name in CPU_FEATURES if flag in flags), None)


def native_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether the devices that will train compute in bfloat16 natively: every GPU of compute
    capability 8.0 or more (Ampere on), or without GPUs a CPU with AVX-512 BF16 or AMX."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0)) for g in gpus]
        return all(tuple(c) >= (8, 0) for c in capabilities)
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags(cpuinfo))


def resolve_precision(name: str, cpuinfo: str | None = None) -> str:
    """``mixed_precision`` as it applies here: ``auto`` is ``mixed_bfloat16`` where
    ``native_bfloat16()``, else ``none`` (float32); other values are kept."""
    if name != "auto":
        return name
    return "mixed_bfloat16" if native_bfloat16(cpuinfo) else "none"


def describe_precision(name: str) -> str:
    """``mixed_bfloat16 (auto: bfloat16 is native here)``, for the log."""
    resolved = resolve_precision(name)
    shown = "float32" if resolved == "none" else resolved
    if name != "auto":
        return shown
    return f"{shown} (auto: bfloat16 is {'native' if resolved != 'none' else 'not native'} here)"


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


__all__ = ["cpu_features", "cpu_flags", "describe_device", "describe_precision", "native_bfloat16", "resolve_precision"]
