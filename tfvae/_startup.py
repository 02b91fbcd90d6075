"""Starts TensorFlow without burying the user's output under its native start-up log.

TensorFlow's C++ runtime logs CUDA probing and oneDNN notices through absl
before its log level applies, on every import. `import tfvae` imports
TensorFlow (it registers tfvae's Keras classes), so it does that here, once,
with those lines held back; they are replayed if the import fails.
"""

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def native_stderr_captured():
    """Holds back what native code writes to file descriptor 2 inside the block.

    The text is replayed if the block raises.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable file descriptor 2 (some embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow():
    """Imports TensorFlow, Keras and TFP quietly (see the module docstring)."""
    # Users can still set the variable themselves.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_captured():
        import keras  # noqa: F401
        import tensorflow as tf
        import tensorflow_probability  # noqa: F401

        # Lists devices without running an op: MultiWorkerMirroredStrategy
        # must be created before the first one.
        tf.config.list_physical_devices()
