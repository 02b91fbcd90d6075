"""The exported functions: names, named inputs and named outputs.

Every function takes float32 tensors with a dynamic batch dimension and
returns a dict, so TF Serving and LiteRT see named outputs (never
`output_0`). None of them draws random numbers: noise is an input (`eps`),
so each graph is deterministic and converts to TFLite with builtin ops only.

SavedModel signatures (TF Serving):

| signature | inputs | outputs |
|---|---|---|
| `serving_default` | `x` | `reconstruction` (decoded from the posterior mean / the code) |
| `encode` | `x` | VAE: `mean`, `scale` of q(z given x); AE: `z` |
| `decode` | `z` | `reconstruction` (the likelihood's mean) |
| `sample` (VAE) | `eps` | `sample`: decoded `z = eps`, with `eps ~ N(0, I)` drawn by the caller |
| `score` | `x` | VAE: `score`, `reconstruction_loss`, `kl_loss`; AE: `score` |

A conditional model (the conditional VAE) takes its labels in every
function as a second input `y`, int32 class labels of shape `(batch,)`:
`decode(z, y)`, `sample(eps, y)`, `score(x, y)`, `encode(x, y)`,
`serving_default(x, y)`.

TFLite signatures: `encode`, `decode`, `reconstruct` (the same as
`serving_default`), and `score` where it converts with builtin ops only.
`score` is the one a file may go without (`OPTIONAL_TFLITE_SIGNATURES`):

- in every file, when its graph needs TensorFlow (Flex) ops. That depends
  on the family and on the likelihood, so the export finds it by
  converting (`tfvae.export.tflite.convert_signatures`): the VAE's
  bernoulli, gaussian and discretized-logistic scores convert, the
  discretized Gaussian's needs `Erf`, the VampPrior's mixture prior and
  the IAF's sampled KL need TensorFlow ops too;
- in the int8 file, when the model keeps it from full-integer arithmetic
  (`full_integer_left_out`): a `ServingFunction(full_integer=False)`
  (the hierarchical VAE), or an 8-bit likelihood.

A family keeps a function off devices altogether with
`ServingFunction(on_device=False)` (the VQ-VAE's `reconstruct` and
`score`). The export says in one line which files leave `score` out, and why.

The VAE's `score` is the per-example negative ELBO with its expectation
taken at the posterior mean (`eps = 0`, so `z = mu`):
`-log p(x | z = mu) + KL(q(z|x) || p(z))`, in nats. It is deterministic, so
an input always gets the same score and an anomaly threshold stays put; a
Monte Carlo estimate would need many noise draws per request. The KL term
is exact and unweighted (`beta` weights training, not the bound). The
autoencoder's `score` is its per-example reconstruction error (mean squared
error, or binary cross-entropy for `likelihood="bernoulli"`).

Exports compute in float32. A model trained under a mixed policy
(`mixed_bfloat16`, `mixed_float16`: float32 weights, 16-bit arithmetic) is
exported as a float32 copy with the same weights, because TFLite has no
bfloat16 kernels and TF Serving machines may lack bfloat16 instructions;
`float32_model` makes the copy.
"""

import dataclasses

import keras
import tensorflow as tf

from tfvae.math.likelihoods import is_eight_bit
from tfvae.models.registry import family_of

TFLITE_SIGNATURES = ("encode", "decode", "reconstruct", "score")
# The TFLite signatures a file may go without: the export leaves them out when
# their graph needs TensorFlow (Flex) ops, instead of failing.
OPTIONAL_TFLITE_SIGNATURES = ("score",)
# The class labels a conditional model's functions take: int32, shape (batch,).
LABELS_INPUT = "y"


@dataclasses.dataclass(frozen=True)
class Signature:
    """One exported function.

    Args:
        name: str. Signature key.
        function: callable. Takes the inputs as keyword arguments and
            returns a dict of output tensors.
        inputs: dict. Input name -> `tf.TensorSpec` (batch dimension `None`).
        outputs: tuple of str. Output names.
    """

    name: str
    function: object
    inputs: dict
    outputs: tuple

    @property
    def input_signature(self):
        return list(self.inputs.values())


def check_exportable(model):
    """Raises `TfvaeError` unless `model` is an instance of a registered model family."""
    return family_of(model)


def data_shape(model):
    """The shape of one example, from the decoder's output shape."""
    return tuple(model.decoder.data_shape)


def _policy_names(layer):
    yield layer.dtype_policy.name
    for sublayer in getattr(layer, "layers", []):
        yield from _policy_names(sublayer)


def _float32_policies(config):
    """`config` with every serialized mixed dtype policy replaced by float32."""
    if isinstance(config, list):
        return [_float32_policies(item) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy":
        return {**config, "config": {**config.get("config", {}), "name": "float32"}}
    return {key: _float32_policies(value) for key, value in config.items()}


def float32_model(model):
    """`model` computing in float32: itself, or a float32 copy sharing its weight values.

    Args:
        model: a built tfvae `VAE` or `Autoencoder`.

    Returns:
        `model` when every layer's dtype policy is float32; otherwise a new
        model of the same class and config under the float32 policy, built,
        with `model`'s weights.
    """
    check_exportable(model)
    if set(_policy_names(model)) <= {"float32"}:
        return model
    config = _float32_policies(keras.saving.serialize_keras_object(model))
    copy = keras.saving.deserialize_keras_object(config)
    copy.build((None, *data_shape(model)))
    copy.set_weights(model.get_weights())
    return copy


def _spec(shape, name):
    return tf.TensorSpec((None, *shape), tf.float32, name=name)


def _signatures(model):
    """Every function of the model's `serving_functions` table, as a `Signature`."""
    check_exportable(model)
    model = float32_model(model)
    shapes = {"data": data_shape(model), "latent": (model.latent_dim,)}
    signatures = {}
    for name, spec in type(model).serving_functions.items():
        if not spec.available(model):
            continue
        inputs = {spec.input_name: _spec(shapes[spec.input_kind], spec.input_name)}
        if spec.labels:
            inputs[LABELS_INPUT] = tf.TensorSpec((None,), tf.int32, name=LABELS_INPUT)
        function = _one_input(getattr(model, spec.method))
        signatures[name] = Signature(name, function, inputs, tuple(spec.outputs))
    return signatures


def _one_input(method):
    """`method` callable with its input (and labels `y`, if it takes them) by position or by name."""

    def function(*args, **kwargs):
        return method(*args, *kwargs.values())

    return function


def serving_signatures(model):
    """The SavedModel signatures of `model`, keyed by signature name.

    `serving_default` reconstructs; the autoencoder has no `sample` (it has
    no prior).

    Args:
        model: a tfvae `VAE` or `Autoencoder`, built.
    """
    signatures = _signatures(model)
    default = signatures.pop("reconstruct")
    return {"serving_default": dataclasses.replace(default, name="serving_default"), **signatures}


def tflite_signatures(model):
    """The TFLite signatures `model` offers (`encode`, `decode`, `reconstruct`, `score`), by name.

    Those its `serving_functions` table keeps off devices are left out; the
    export may still leave out an `OPTIONAL_TFLITE_SIGNATURES` one whose
    graph needs TensorFlow ops (see `tfvae.export.tflite.convert_signatures`).
    """
    signatures = _signatures(model)
    table = type(model).serving_functions
    return {
        name: signatures[name]
        for name in TFLITE_SIGNATURES
        if name in signatures and table[name].on_device
    }


def full_integer_left_out(model):
    """The TFLite signatures a full-integer (int8) file goes without, each with why.

    A signature whose `ServingFunction` declares `full_integer=False`; and
    `score` under an 8-bit likelihood (discretized logistic or Gaussian),
    which scores each pixel by the probability of its bin, 1/255 wide: int8
    activations have 256 levels over their whole range, too coarse for such
    bins, and the converter's quantizer crashes on the graph.

    Args:
        model: a tfvae model, built.

    Returns:
        `{signature: reason}`, the reason one line.
    """
    table = type(model).serving_functions
    reasons = {}
    for name in tflite_signatures(model):
        if not table[name].full_integer:
            reasons[name] = (
                f"{type(model).__name__} declares its {name} unfit for full-integer arithmetic"
            )
    if "score" in table and "score" not in reasons and is_eight_bit(model.likelihood):
        reasons["score"] = (
            f"the {model.likelihood.name} likelihood's 8-bit bins are finer than int8 "
            "activations resolve"
        )
    return {name: reasons[name] for name in tflite_signatures(model) if name in reasons}
