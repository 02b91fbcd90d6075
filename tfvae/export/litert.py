"""Running a `.tflite` model in the LiteRT interpreter, by signature."""

import numpy as np
from ai_edge_litert.interpreter import Interpreter


class LiteRTModel:
    """A `.tflite` model in the LiteRT interpreter (`ai_edge_litert`), called by signature.

    Inputs and outputs are float32 whatever the file stores: for a
    full-integer model this class quantizes the inputs and dequantizes the
    outputs with each tensor's own scale and zero point, as an app on a
    device would. Any batch size works (the signature runner resizes).

    Args:
        model: str or bytes. Path of a `.tflite` file, or its contents.
        num_threads: int or None. Interpreter threads; `None` lets LiteRT
            choose. Defaults to `None`.

    Example:

    >>> lite = LiteRTModel("saved_models/vae/tflite/1/int8.tflite")
    >>> lite("encode", x=x_test[:8])["mean"].shape
    (8, 16)
    """

    def __init__(self, model, num_threads=None):

        if isinstance(model, (bytes, bytearray)):
            self.interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
        else:
            self.interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
        self._runners = {}

    @property
    def signatures(self):
        """`{signature: {"inputs": [...], "outputs": [...]}}` as LiteRT lists them."""
        return self.interpreter.get_signature_list()

    def runner(self, signature):
        """The LiteRT signature runner of `signature` (cached)."""
        if signature not in self._runners:
            self._runners[signature] = self.interpreter.get_signature_runner(signature)
        return self._runners[signature]

    def quantize_inputs(self, signature, **inputs):
        """`inputs` converted to the dtypes the signature stores (int8 for full-integer models)."""
        details = self.runner(signature).get_input_details()
        return {
            name: _to_stored(np.asarray(value), details[name]) for name, value in inputs.items()
        }

    def run_stored(self, signature, stored_inputs):
        """Runs on already-converted inputs and returns the raw outputs (no dequantization)."""
        return self.runner(signature)(**stored_inputs)

    def dequantize_outputs(self, signature, outputs):
        details = self.runner(signature).get_output_details()
        return {name: _from_stored(value, details[name]) for name, value in outputs.items()}

    def __call__(self, signature, **inputs):
        """Runs `signature` on float inputs and returns float32 outputs by name."""
        stored = self.quantize_inputs(signature, **inputs)
        return self.dequantize_outputs(signature, self.run_stored(signature, stored))


def _to_stored(value, detail):
    scale, zero_point = detail["quantization"]
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer) or not scale:
        # Floats, and integers that are not quantized values (class labels).
        return value.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    quantized = np.round(value / scale + zero_point)
    return np.clip(quantized, info.min, info.max).astype(dtype)


def _from_stored(value, detail):
    scale, zero_point = detail["quantization"]
    if not np.issubdtype(np.dtype(detail["dtype"]), np.integer):
        return np.asarray(value, np.float32)
    if not scale:
        # Integers that are not quantized values (a VQ-VAE's code indices).
        return np.asarray(value)
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
