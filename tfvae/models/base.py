"""What the models share: the serving table, the no-labels `fit`, data unpacking, loss averaging."""

import dataclasses
import inspect

import keras
import numpy as np
import tensorflow as tf

from tfvae.errors import TfvaeError
from tfvae.math.likelihoods import get_likelihood

SERVING_INPUTS = {"x": "data", "z": "latent", "eps": "latent"}


class TakesNoLabelsMixin:
    """`fit` and `evaluate` for a model that reconstructs its input and takes no labels.

    Array arguments are checked before Keras traces anything: a `y` (or a
    validation `y`) not shaped like `x` raises a `TfvaeError` at once, not
    after the first epoch. And Keras drops `sample_weight` when `y` is `None`
    (it packs the data as `x` alone), so `fit(x, sample_weight=w)` would
    silently train unweighted: here an array `x` given weights but no `y`
    becomes its own target, and `train_step` receives `(x, x, w)`; the same
    holds for `evaluate` and for `validation_data=(x_val, None, w_val)`.
    """

    def fit(self, *args, **kwargs):
        bound = _bind(keras.Model.fit, self, args, kwargs)
        _input_as_target(self, bound.arguments)
        validation = bound.arguments.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) in (2, 3):
            val_x, val_y, *val_weight = validation
            arguments = {"x": val_x, "y": val_y, "sample_weight": (val_weight or [None])[0]}
            _input_as_target(self, arguments)
            bound.arguments["validation_data"] = (val_x, arguments["y"], *val_weight)
        return super().fit(*bound.args[1:], **bound.kwargs)

    def evaluate(self, *args, **kwargs):
        bound = _bind(keras.Model.evaluate, self, args, kwargs)
        _input_as_target(self, bound.arguments)
        return super().evaluate(*bound.args[1:], **bound.kwargs)


def _bind(method, model, args, kwargs):
    return inspect.signature(method).bind(model, *args, **kwargs)


def _input_as_target(model, arguments):
    x, y = arguments.get("x"), arguments.get("y")
    if not hasattr(x, "shape"):
        return
    if y is not None:
        check_target(model, x.shape, getattr(y, "shape", None))
    elif arguments.get("sample_weight") is not None:
        arguments["y"] = x


def check_target(model, x_shape, y_shape):
    """Raises a `TfvaeError` unless a `y` of `y_shape` can be `model`'s target for `x`."""
    x_shape, y_shape = tf.TensorShape(x_shape), tf.TensorShape(y_shape)
    if x_shape.rank is None:
        return
    if y_shape.rank is None or not y_shape[1:].is_compatible_with(x_shape[1:]):
        raise TfvaeError(
            f"{type(model).__name__} reconstructs its input and takes no labels "
            "(a y is only accepted as a target shaped like x); pass x alone. "
            f"Received: y of shape {_shape_text(y_shape)} for x of shape {_shape_text(x_shape)}"
        )


@dataclasses.dataclass(frozen=True)
class ServingFunction:
    """One function a model offers for serving: one named input, named outputs.

    A model lists them in its `serving_functions` class attribute, keyed by
    signature name; the export builds its SavedModel and TFLite signatures
    from that table, so a model family declares its signatures once.

    Args:
        input_name: str. `"x"` (data), `"z"` (a latent code) or `"eps"`
            (standard normal noise in latent space).
        input_kind: str. `"data"`: the input is a batch of examples, each
            of the data's shape; `"latent"`: each of shape `(latent_dim,)`.
        outputs: tuple of str. The names of the outputs, in order.
        method: str. The name of the model method that takes the input
            tensor and returns a dict with exactly `outputs` as keys.
        requires: str or None. The name of a model attribute that must not
            be `None` for the function to be offered (the VQ-VAE's `sample`
            needs its `prior`). Defaults to `None`.
        on_device: bool. Whether the TFLite files hold the function too
            (among `encode`, `decode`, `reconstruct`, `score`; the export
            still leaves out a `score` that needs TensorFlow ops). The
            VQ-VAE leaves out `reconstruct` and `score`: its quantized
            forms flip a code now and then, which `encode` is verified on,
            and a device runs `decode` on `encode`'s codes. Defaults to
            `True`.
        labels: bool. The function also takes `y`, int32 class labels of
            shape `(batch,)`, as its second input (a model whose functions
            take labels has `num_classes`). Defaults to `False`.
        full_integer: bool. Whether the full-integer (int8) TFLite file
            holds the function too, when `on_device`. The hierarchical
            VAE's `score` converts to int8 but LiteRT aborts running it.
            Defaults to `True`.

    Example:

    >>> ServingFunction("z", "latent", ("reconstruction",), "serving_decode")
    """

    input_name: str
    input_kind: str
    outputs: tuple
    method: str
    requires: str | None = None
    on_device: bool = True
    labels: bool = False
    full_integer: bool = True

    def __post_init__(self):
        if self.input_name not in SERVING_INPUTS:
            raise TfvaeError(
                f"input_name must be one of {sorted(SERVING_INPUTS)}. "
                f"Received: input_name={self.input_name!r}"
            )
        if self.input_kind != SERVING_INPUTS[self.input_name]:
            raise TfvaeError(
                f"input {self.input_name!r} is of kind {SERVING_INPUTS[self.input_name]!r}. "
                f"Received: input_kind={self.input_kind!r}"
            )
        if isinstance(self.outputs, str) or not self.outputs:
            raise TfvaeError(
                f"outputs must be a non-empty tuple of names. Received: outputs={self.outputs!r}"
            )
        object.__setattr__(self, "outputs", tuple(self.outputs))

    def available(self, model):
        """Whether `model` offers the function (see `requires`)."""
        return self.requires is None or getattr(model, self.requires) is not None

    def __call__(self, model, inputs):
        """Runs the function on `model`: the dict `model.<method>(inputs)` (`(x, y)`: two arguments)."""
        if self.labels:
            return getattr(model, self.method)(*inputs)
        return getattr(model, self.method)(inputs)


def unpack_inputs(model, data, weighted=True):
    """Returns `(x, target, sample_weight)` from what `fit` passes to `model.train_step`.

    Accepts `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`. A generative
    model reconstructs its input and takes no labels: a `y` with the shape of
    `x` is the target (a denoising pair `(noisy, clean)`), any other `y`
    raises a `TfvaeError` instead of being silently dropped. `sample_weight`
    comes back as float32 `[batch]`, one weight per example, or `None`; a
    model that cannot weigh examples passes `weighted=False` and refuses it.
    """
    try:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(
            tuple(data) if isinstance(data, list) else data
        )
        if isinstance(x, (tuple, list)) and len(x) == 1:
            # `fit((x,))`: Keras reads a tuple of arrays as a model's inputs.
            x = x[0]
        target = x
        if y is not None:
            check_target(model, x.shape, getattr(y, "shape", None))
            target = y
        if sample_weight is not None and not weighted:
            raise TfvaeError(
                f"{type(model).__name__} trains on unweighted examples and does not support "
                "sample_weight; fit it without weights"
            )
        return x, target, _per_example_weights(sample_weight)
    except TfvaeError:
        # Raised while Keras traces its step function, before the optimizer
        # has built its variables there: a retry with corrected data would
        # reuse that function and fail with "Creating variables on a
        # non-first call". Dropping the functions makes the next call trace
        # afresh.
        model.train_function = model.test_function = None
        raise


def _shape_text(shape):
    if shape.rank is None:
        return "unknown"
    dims = ["batch" if i == 0 else str(d) for i, d in enumerate(shape)]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _per_example_weights(sample_weight):
    if sample_weight is None:
        return None
    weights = tf.cast(sample_weight, tf.float32)
    shape = weights.shape
    if shape.rank is None or shape.rank == 0 or any(d not in (1, None) for d in shape[1:]):
        raise TfvaeError(
            "sample_weight must hold one weight per example, shape (batch,). "
            f"Received: sample_weight of shape {_shape_text(shape)}"
        )
    return tf.reshape(weights, tf.shape(weights)[:1])


def global_batch_size(x):
    """The number of examples in this step across all replicas.

    Summed over replicas instead of `per_replica * num_replicas`, so an
    uneven last batch under `tf.distribute` is averaged exactly as on one
    device.
    """
    local = tf.shape(x)[0]
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return local
    return context.all_reduce(tf.distribute.ReduceOp.SUM, local)


def global_batch_position(x):
    """`(offset, total)`: where this replica's examples sit in the global batch, and its size.

    Training noise drawn for the whole global batch from a stateless
    generator and sliced at `offset` is the same, example for example,
    however the batch is split over `tf.distribute` replicas.
    """
    local = tf.shape(x)[0]
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 0, local
    sizes = context.all_gather(tf.reshape(local, [1]), axis=0)
    return tf.reduce_sum(sizes[: context.replica_id_in_sync_group]), tf.reduce_sum(sizes)


def noise_key(seed, step):
    """The stateless-generator key of a train step's noise: `(seed, step)` as int64."""
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])


def average_over_global_batch(per_example_loss, x, sample_weight=None):
    """`sum(sample_weight * loss) / global_batch`: the loss whose replica gradients sum correctly.

    Without `sample_weight` every example weighs 1. The divisor counts the
    examples, not their weights, as Keras's `"sum_over_batch_size"`
    reduction does.
    """
    return tf.nn.compute_average_loss(
        per_example_loss, sample_weight=sample_weight, global_batch_size=global_batch_size(x)
    )


def build_sequence(sequence, input_shape):
    """Builds each layer of `sequence` in turn and returns the final output shape."""
    shape = tuple(input_shape)
    for layer in sequence:
        # A weightless layer (Reshape) is built at construction and never
        # learns its input shape; building it here lets `summary()` show it.
        if not layer.built or not layer.weights:
            layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


def regularization_loss(model):
    if not model.losses:
        return 0.0
    return tf.nn.scale_regularization_loss(tf.add_n([tf.cast(v, tf.float32) for v in model.losses]))


def apply_gradients(model, tape, loss):
    """Differentiates `loss` (loss-scaled under mixed precision) and steps the optimizer."""
    scaled = model.optimizer.scale_loss(loss) if hasattr(model.optimizer, "scale_loss") else loss
    variables = model.trainable_variables
    gradients = tape.gradient(scaled, variables)
    model.optimizer.apply(gradients, variables)


def metric_results(model):
    """Returns `{name: result}` of `model.metrics`, as a `train_step` returns them.

    Under `MultiWorkerMirroredStrategy`, Keras 3.15 averages a step's outputs
    with `strategy.reduce("MEAN", value, axis=0)`, which needs an axis to
    reduce: the results (equal on every replica once the metrics are synced)
    get a length-1 axis there, and the reduction gives back the same scalar.
    """
    results = {m.name: m.result() for m in model.metrics}
    if isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        results = {name: tf.reshape(value, [1]) for name, value in results.items()}
    return results


def mean_trackers(*names):
    return [keras.metrics.Mean(name=name) for name in names]


class PresetMixin:
    """`from_preset` and `save_to_preset`: a model to and from a preset (see `tfvae.presets`).

    A preset is a directory holding the model's `config.json`,
    `model.weights.h5` and `metadata.json`, in keras-hub's layout; the
    package ships a few trained ones (`tfvae presets` lists them). The
    files are `tfvae.presets`'s business: these methods only hand over.

    Example:

    >>> vae = VAE.from_preset("vae_dense_mnist5k")
    >>> vae.save_to_preset("my_vae")
    >>> EncoderDecoderModel.from_preset("my_vae")  # whichever family it holds
    """

    @classmethod
    def from_preset(cls, preset):
        """Loads a preset: a shipped name, a directory or a hub handle (`hf://owner/repo`).

        Called on a model class, refuses a preset holding another class;
        called on `EncoderDecoderModel`, returns whichever family it holds.
        """
        from tfvae import presets  # presets sits above the models

        return presets.from_preset(preset, model_class=cls)

    def save_to_preset(self, preset_dir, **kwargs):
        """Writes the model as a preset directory; `kwargs` as for `tfvae.presets.save_to_preset`."""
        from tfvae import presets

        return presets.save_to_preset(self, preset_dir, **kwargs)


class EncoderDecoderModel(PresetMixin, TakesNoLabelsMixin, keras.Model):
    """What every tfvae encoder-decoder model shares: networks, likelihood, decoding, config.

    A subclass adds its objective (`per_example_losses`, `train_step`), its
    `score`, `latent_code` and `serving_functions`, and lists its own
    arguments in `get_config`; the encoder and the decoder are serialized
    here, with `keras.layers.serialize` / `deserialize`.

    Args:
        encoder: `Encoder`.
        decoder: `Decoder`.
        likelihood: str. `"bernoulli"` or `"gaussian"`.
        **kwargs: Base `keras.Model` arguments such as `name`.
    """

    def __init__(self, encoder, decoder, likelihood, **kwargs):
        super().__init__(**kwargs)
        # === Layers ===
        self.encoder = encoder
        self.decoder = decoder
        # === Config ===
        self.likelihood = get_likelihood(likelihood)

    @property
    def latent_dim(self):
        return self.encoder.latent_dim

    @property
    def sample_source(self):
        """Where `sample`'s codes come from: `"prior"`, or the class of a sampler fitted after training."""
        return "prior"

    def decode(self, z, training=False):
        """Returns the likelihood's mean (the reconstruction) for latent codes `z`."""
        return self.likelihood.mean(tf.cast(self.decoder(z, training=training), tf.float32))

    def serving_reconstruct(self, x):
        """`{"reconstruction": call(x)}`, the exported `reconstruct` function."""
        return {"reconstruction": self(x, training=False)}

    def serving_decode(self, z):
        """`{"reconstruction": decode(z)}`, the exported `decode` function."""
        return {"reconstruction": self.decode(z)}

    def initialize_output_bias(self, x):
        """Starts the decoder at the data's mean: its output bias becomes the
        likelihood parameters of the per-feature mean of `x`.

        The network then learns deviations from the average example instead of
        spending its first epochs finding it (for MNIST, several nats of
        held-out likelihood after 50 epochs).
        """
        mean = np.mean(np.asarray(x, np.float64), axis=0)
        self.decoder.set_output_bias(self.likelihood.params_for_mean(mean))

    def build(self, input_shape):
        self.encoder.build(input_shape)
        self.decoder.build((None, self.latent_dim))
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.layers.serialize(self.encoder),
                "decoder": keras.layers.serialize(self.decoder),
                "likelihood": self.likelihood.name,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        config["decoder"] = keras.layers.deserialize(config["decoder"])
        return cls(**config)
