"""`CodePrior`: an autoregressive Transformer over the VQ-VAE's code maps."""

import math

import keras
import tensorflow as tf
from keras import layers

from tfvae.models.encoder import check_positive_int


@keras.saving.register_keras_serializable(package="tfvae")
class CodePrior(keras.Model):
    """A small causal Transformer: `p(c) = prod_i p(c_i | c_<i)` over a code map in raster order.

    The input at position `i` is the code at `i - 1` (a start token at 0)
    plus a learned position embedding; causal self-attention blocks
    (pre-norm, GELU MLP) give the logits of the code at `i`. `call(codes)`
    returns the logits `[batch, positions, codebook_size]`, so `fit(codes,
    codes)` with sparse categorical cross-entropy trains it.
    `bits_per_dim(codes)` is the negative log-likelihood per position in
    bits; `sample_codes(uniform)` draws code maps by inverse-CDF sampling,
    position by position, from uniform noise the caller gives: no random
    op in the graph.

    Args:
        codebook_size: int. Number of codes K.
        sequence_length: int. Positions of a code map.
        embed_dim: int. Width of the Transformer. Defaults to `64`.
        num_heads: int. Attention heads. Defaults to `4`.
        num_layers: int. Transformer blocks. Defaults to `2`.
        dropout: float. Dropout rate in training. Defaults to `0.1`.
        **kwargs: Base `keras.Model` arguments such as `name`.

    Example:

    >>> prior = CodePrior(32, 49)
    >>> prior.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> prior.fit(codes, codes, epochs=10)
    >>> new_codes = prior.sample_codes(np.random.default_rng(0).uniform(size=(16, 49)))
    """

    def __init__(
        self,
        codebook_size,
        sequence_length,
        embed_dim=64,
        num_heads=4,
        num_layers=2,
        dropout=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("codebook_size", codebook_size),
            ("sequence_length", sequence_length),
            ("embed_dim", embed_dim),
            ("num_heads", num_heads),
            ("num_layers", num_layers),
        ):
            check_positive_int(name, value)
        # === Layers ===
        self.token_embedding = layers.Embedding(codebook_size + 1, embed_dim, name="tokens")
        self.position_embedding = layers.Embedding(sequence_length, embed_dim, name="positions")
        self.attention_norms, self.attentions, self.mlp_norms = [], [], []
        self.mlp_inputs, self.mlp_outputs, self.dropouts = [], [], []
        for i in range(num_layers):
            self.attention_norms.append(layers.LayerNormalization(epsilon=1e-5, name=f"norm_a{i}"))
            self.attentions.append(
                layers.MultiHeadAttention(
                    num_heads,
                    max(1, embed_dim // num_heads),
                    dropout=dropout,
                    name=f"attention_{i}",
                )
            )
            self.mlp_norms.append(layers.LayerNormalization(epsilon=1e-5, name=f"norm_m{i}"))
            self.mlp_inputs.append(layers.Dense(4 * embed_dim, activation="gelu", name=f"mlp_{i}a"))
            self.mlp_outputs.append(layers.Dense(embed_dim, name=f"mlp_{i}b"))
            self.dropouts.append(layers.Dropout(dropout, name=f"dropout_{i}"))
        self.final_norm = layers.LayerNormalization(epsilon=1e-5, name="final_norm")
        self.logits = layers.Dense(codebook_size, name="logits")
        # === Config ===
        self.codebook_size = codebook_size
        self.sequence_length = sequence_length
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.dropout = float(dropout)

    def build(self, input_shape):
        self.call(tf.zeros([1, self.sequence_length], tf.int32))
        self.built = True

    def call(self, codes, training=False):
        codes = tf.cast(codes, tf.int32)
        start = tf.fill([tf.shape(codes)[0], 1], self.codebook_size)
        tokens = tf.concat([start, codes[:, :-1]], axis=1)
        positions = self.position_embedding(tf.range(self.sequence_length))
        h = self.token_embedding(tokens) + positions[tf.newaxis]
        for i in range(self.num_layers):
            a = self.attention_norms[i](h)
            attended = self.attentions[i](a, a, use_causal_mask=True, training=training)
            h = h + self.dropouts[i](attended, training=training)
            mixed = self.mlp_outputs[i](self.mlp_inputs[i](self.mlp_norms[i](h)))
            h = h + self.dropouts[i](mixed, training=training)
        return tf.cast(self.logits(self.final_norm(h)), tf.float32)

    def bits_per_dim(self, codes):
        """`-log2 p(codes)` per position, float32 `[batch]`."""
        codes = tf.cast(codes, tf.int32)
        nats = tf.nn.sparse_softmax_cross_entropy_with_logits(codes, self(codes))
        return tf.reduce_mean(nats, axis=1) / math.log(2.0)

    def sample_codes(self, uniform):
        """Code maps `[batch, positions]` (int32) drawn with uniform noise `[batch, positions]`.

        Position `i` takes the first code whose cumulative probability,
        given the codes drawn before it, exceeds `uniform[:, i]`.
        """
        uniform = tf.cast(uniform, tf.float32)
        batch = tf.shape(uniform)[0]

        def step(i, codes):
            logits = tf.gather(self(codes), i, axis=1)
            cumulative = tf.cumsum(tf.nn.softmax(logits), axis=-1)
            threshold = tf.gather(uniform, [i], axis=1)
            below = tf.cast(cumulative < threshold, tf.int32)
            drawn = tf.minimum(tf.reduce_sum(below, axis=-1), self.codebook_size - 1)
            where = tf.one_hot(i, self.sequence_length, dtype=tf.int32)[tf.newaxis]
            return i + 1, codes + drawn[:, tf.newaxis] * where

        _, codes = tf.while_loop(
            lambda i, _: i < self.sequence_length,
            step,
            (tf.constant(0), tf.zeros([batch, self.sequence_length], tf.int32)),
        )
        return codes

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "codebook_size": self.codebook_size,
                "sequence_length": self.sequence_length,
                "embed_dim": self.embed_dim,
                "num_heads": self.num_heads,
                "num_layers": self.num_layers,
                "dropout": self.dropout,
            }
        )
        return config
