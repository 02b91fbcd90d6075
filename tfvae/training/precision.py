"""Which Keras dtype policy a run uses: float32 or mixed precision."""

import functools

import tensorflow as tf

from tfvae import checks

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_bf16():
    """Whether the CPU computes bfloat16 dot products natively (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return any(flag in flags for flag in _CPU_BF16_FLAGS)


def resolve_precision(name):
    """Returns the Keras dtype policy name for `name`.

    `"auto"` picks `"mixed_bfloat16"` on a machine without GPUs whose CPU has
    native bfloat16 instructions (matrix products run about twice as fast
    there), and `"float32"` everywhere else. Variables stay float32 under
    mixed policies, and tfvae computes the KL and the log-likelihood in
    float32 whatever the policy.
    """
    if checks.choice("precision", name, PRECISIONS) != "auto":
        return name

    if tf.config.list_physical_devices("GPU"):
        return "float32"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"
