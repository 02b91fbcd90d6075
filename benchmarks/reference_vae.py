"""The reference: a VAE in the plain style of the public Keras "Variational AutoEncoder" example.

Written from the recipe (a `Sampling` layer, functional encoder and decoder, a
custom `train_step` with mean trackers, default `compile`), with the
benchmarks' MLP: 784-512-(16 mean, 16 log-variance) / 16-512-784 sigmoid.
It is what a Keras user would write by hand; the benchmarks train it beside
tfvae in the same process.
"""

import keras
import tensorflow as tf
from keras import layers
from keras import ops


class Sampling(layers.Layer):
    """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

    def __init__(self, seed=1337, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(shape=ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def build_encoder(data_shape=(28, 28, 1), latent_dim=16, hidden=512):
    inputs = keras.Input(shape=data_shape)
    x = layers.Flatten()(inputs)
    x = layers.Dense(hidden, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    return keras.Model(inputs, [z_mean, z_log_var, z], name="encoder")


def build_decoder(data_shape=(28, 28, 1), latent_dim=16, hidden=512):
    latent_inputs = keras.Input(shape=(latent_dim,))
    x = layers.Dense(hidden, activation="relu")(latent_inputs)
    x = layers.Dense(int(tf.reduce_prod(data_shape)), activation="sigmoid")(x)
    outputs = layers.Reshape(data_shape)(x)
    return keras.Model(latent_inputs, outputs, name="decoder")


class ReferenceVAE(keras.Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def call(self, inputs):
        z_mean, _, _ = self.encoder(inputs)
        return self.decoder(z_mean)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = ops.mean(
                ops.sum(keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2))
            )
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights, strict=True))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {m.name: m.result() for m in self.metrics}


def build_reference_vae(data_shape=(28, 28, 1), latent_dim=16, hidden=512):
    """The reference model, compiled as the example does: `Adam()` (1e-3), defaults elsewhere."""
    vae = ReferenceVAE(
        build_encoder(data_shape, latent_dim, hidden), build_decoder(data_shape, latent_dim, hidden)
    )
    vae.compile(optimizer=keras.optimizers.Adam())
    return vae
