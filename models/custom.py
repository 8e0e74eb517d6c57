"""Custom Keras objects of the zoo, registered so saved ``.keras`` files load back.

Import this module (``models.saving.load_keras_model`` does) before loading a model file.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="runner_models")
class MCDropoutModel(keras.Model):
    """Monte Carlo dropout (Gal & Ghahramani 2016; Hands-On ML ch. 11): trains like ``base``,
    but ``predict`` averages ``samples`` forward passes with dropout left on.

    Each batch it predicts draws the same ``samples`` dropout masks from ``seed``, each mask
    shared by every row of the batch: a row's prediction is the same in any process, alone
    or among other rows, at any position (a served model must be repeatable). Each row still
    averages ``samples`` independent draws of the dropout distribution.
    """

    def __init__(self, base: keras.Model, samples: int = 30, seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.base = base
        self.samples = samples
        self.seed = seed

    def _reset_dropout_seeds(self) -> None:
        generators = [
            layer.seed_generator
            for layer in self.base._flatten_layers()
            if getattr(layer, "seed_generator", None) is not None
        ]
        for i, generator in enumerate(generators):
            state = generator.state
            state.assign(keras.ops.convert_to_tensor([self.seed + i, 0], dtype=state.dtype))

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """The MC estimate, its dropout masks drawn from ``seed`` afresh on every call."""
        self._reset_dropout_seeds()
        return super().predict(x, *args, **kwargs)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """One deterministic (or, in training, stochastic) pass through the base model."""
        return self.base(inputs, training=training)

    def predict_step(self, data: Any) -> Any:
        """The mean of ``samples`` stochastic passes: the MC estimate of the prediction, its
        masks drawn afresh from ``seed`` for this batch and shared by its rows."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        self._reset_dropout_seeds()
        dropouts = [
            layer
            for layer in self.base._flatten_layers()
            if isinstance(layer, keras.layers.Dropout)
        ]
        kept = [layer.noise_shape for layer in dropouts]
        for layer in dropouts:  # read when the step is traced: one mask row for the batch
            layer.noise_shape = (1, None)
        try:
            passes = [self.base(x, training=True) for _ in range(self.samples)]
        finally:
            for layer, shape in zip(dropouts, kept, strict=True):
                layer.noise_shape = shape
        return keras.ops.mean(keras.ops.stack(passes), axis=0)

    def get_config(self) -> dict[str, Any]:
        """Serialise the base model and the number of samples."""
        return {
            **super().get_config(),
            "base": keras.saving.serialize_keras_object(self.base),
            "samples": self.samples,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MCDropoutModel:
        """Rebuild from ``get_config``."""
        config = dict(config)
        base = keras.saving.deserialize_keras_object(config.pop("base"))
        return cls(base, **config)


# axes of an image batch (n, height, width, channels) each flip mirrors
_FLIP_AXES = {"horizontal": (2,), "vertical": (1,), "horizontal_and_vertical": (2, 1)}


@keras.saving.register_keras_serializable(package="runner_models")
class FlippedCopies(keras.layers.Layer):
    """Test-time augmentation, first half: at prediction, the batch of flat images followed
    by the same images mirrored as ``flip`` says (one copy per combination of its axes); in
    training the batch as it is. ``MeanOfCopies`` after the network averages the copies."""

    def __init__(self, image_shape: tuple[int, ...], flip: str = "horizontal", **kwargs: Any):
        super().__init__(**kwargs)
        if flip not in _FLIP_AXES:
            raise ValueError(f"flip must be one of {list(_FLIP_AXES)}, got {flip!r}")
        self.image_shape = tuple(int(d) for d in image_shape)
        self.flip = flip

    @property
    def copies(self) -> int:
        """How many versions of each image the network sees at prediction."""
        return 2 ** len(_FLIP_AXES[self.flip])

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """The batch, and at prediction (``training=False``, as ``predict`` passes) its
        mirrored copies after it; a call that does not say is left alone."""
        if training is not False:
            return inputs
        images = [keras.ops.reshape(inputs, (-1, *self.image_shape))]
        for axis in _FLIP_AXES[self.flip]:
            images += [keras.ops.flip(image, axis=axis) for image in images]
        flat = [keras.ops.reshape(image, keras.ops.shape(inputs)) for image in images]
        return keras.ops.concatenate(flat, axis=0)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """The batch size is unknown either way; the features are unchanged."""
        return (None, *input_shape[1:])

    def get_config(self) -> dict[str, Any]:
        """The image shape and the flip."""
        return {**super().get_config(), "image_shape": list(self.image_shape), "flip": self.flip}


@keras.saving.register_keras_serializable(package="runner_models")
class MeanOfCopies(keras.layers.Layer):
    """Test-time augmentation, second half: at prediction, the mean of the network's outputs
    over the ``copies`` versions of each row that ``FlippedCopies`` stacked; in training the
    outputs as they are."""

    def __init__(self, copies: int = 2, **kwargs: Any):
        super().__init__(**kwargs)
        self.copies = int(copies)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """Each row's mean over its copies (at prediction, as ``FlippedCopies`` made them)."""
        if training is not False:
            return inputs
        n = keras.ops.shape(inputs)[0] // self.copies
        parts = [inputs[k * n : (k + 1) * n] for k in range(self.copies)]
        return keras.ops.mean(keras.ops.stack(parts), axis=0)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """The batch size is unknown either way; the outputs are unchanged."""
        return (None, *input_shape[1:])

    def get_config(self) -> dict[str, Any]:
        """The number of copies."""
        return {**super().get_config(), "copies": self.copies}
