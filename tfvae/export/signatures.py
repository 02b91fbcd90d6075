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

TFLite signatures: `encode`, `decode`, `reconstruct` (the same as
`serving_default`).

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

from tfvae.errors import TfvaeError

SERVING_SIGNATURES = ("serving_default", "encode", "decode", "sample", "score")
TFLITE_SIGNATURES = ("encode", "decode", "reconstruct")


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


def model_kind(model):
    """`"vae"` or `"ae"` for a tfvae model; raises `TfvaeError` for anything else."""
    from tfvae.models import VAE
    from tfvae.models import Autoencoder

    if isinstance(model, VAE):
        return "vae"
    if isinstance(model, Autoencoder):
        return "ae"
    raise TfvaeError(
        f"can only export a tfvae VAE or Autoencoder. Received: {type(model).__name__}"
    )


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
    import keras

    import tfvae.models  # noqa: F401  (registers the classes for deserialization)

    model_kind(model)
    if set(_policy_names(model)) <= {"float32"}:
        return model
    config = _float32_policies(keras.saving.serialize_keras_object(model))
    copy = keras.saving.deserialize_keras_object(config)
    copy.build((None, *data_shape(model)))
    copy.set_weights(model.get_weights())
    return copy


def _spec(shape, name):
    import tensorflow as tf

    return tf.TensorSpec((None, *shape), tf.float32, name=name)


def _signatures(model):
    import tensorflow as tf

    kind = model_kind(model)
    model = float32_model(model)
    x_spec = {"x": _spec(data_shape(model), "x")}
    z_spec = {"z": _spec((model.latent_dim,), "z")}

    def reconstruct(x):
        return {"reconstruction": model(x, training=False)}

    def decode(z):
        return {"reconstruction": model.decode(z)}

    if kind == "vae":

        def encode(x):
            mean, scale = model.encode(x)
            return {"mean": mean, "scale": scale}

        def sample(eps):
            return {"sample": model.sample(None, eps=eps)}

        def score(x):
            mean, _ = model.encode(x)
            terms = model.per_example_losses(x, eps=tf.zeros_like(mean))
            return {
                "score": terms["reconstruction_loss"] + terms["kl_loss"],
                "reconstruction_loss": terms["reconstruction_loss"],
                "kl_loss": terms["kl_loss"],
            }

        encode_outputs = ("mean", "scale")
        score_outputs = ("score", "reconstruction_loss", "kl_loss")
    else:

        def encode(x):
            return {"z": model.encode(x)}

        def score(x):
            return {"score": model.per_example_losses(x)["reconstruction_loss"]}

        sample = None
        encode_outputs = ("z",)
        score_outputs = ("score",)

    signatures = {
        "reconstruct": Signature("reconstruct", reconstruct, x_spec, ("reconstruction",)),
        "encode": Signature("encode", encode, x_spec, encode_outputs),
        "decode": Signature("decode", decode, z_spec, ("reconstruction",)),
        "score": Signature("score", score, x_spec, score_outputs),
    }
    if sample is not None:
        eps_spec = {"eps": _spec((model.latent_dim,), "eps")}
        signatures["sample"] = Signature("sample", sample, eps_spec, ("sample",))
    return signatures


def serving_signatures(model):
    """The SavedModel signatures of `model`, keyed by signature name.

    `serving_default` reconstructs; the autoencoder has no `sample` (it has
    no prior).

    Args:
        model: a tfvae `VAE` or `Autoencoder`, built.
    """
    signatures = _signatures(model)
    default = signatures.pop("reconstruct")
    result = {"serving_default": dataclasses.replace(default, name="serving_default")}
    result.update(signatures)
    return {name: result[name] for name in SERVING_SIGNATURES if name in result}


def tflite_signatures(model):
    """The TFLite signatures of `model` (`encode`, `decode`, `reconstruct`), keyed by name."""
    signatures = _signatures(model)
    return {name: signatures[name] for name in TFLITE_SIGNATURES}
