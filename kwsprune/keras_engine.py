"""The reference engine: the original's Keras Tiny CNN, one run after another with `model.fit` and its callbacks.

It exists to check the fast batched engine (kwsprune.training) against the original's framework. Keras 3
runs on the backend that KERAS_BACKEND names before the first import: tensorflow (Keras' default and the
original's; `pip install .[tensorflow]`) or torch (`pip install keras`). Fixed as in the fast engine: the
last layer gives logits to a from-logits loss, and every run is seeded.
"""

import numpy as np

from kwsprune.training import TINY_CONVS, TrainConfig


def backend_name() -> str:
    """'tensorflow', 'torch', ... : the backend Keras runs on in this process."""
    import keras

    return keras.backend.backend()


def keras_device(device: str) -> str:
    """'auto' -> 'cuda' when the Keras backend sees a GPU, else 'cpu'; an explicit choice is kept."""
    if device != "auto":
        return device
    backend = backend_name()
    if backend == "tensorflow":
        import tensorflow as tf

        return "cuda" if tf.config.list_physical_devices("GPU") else "cpu"
    if backend == "torch":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"


def tiny_model(n_classes: int, input_shape=(99, 32), dropout: float = 0.1):
    """The original's Sequential Tiny CNN on (99, 32, 1) MFCCs, ending in logits."""
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((*input_shape, 1))])
    for _, filters, kernel in TINY_CONVS:
        model.add(layers.Conv2D(filters, kernel, activation="relu"))
        model.add(layers.AveragePooling2D(2))
    model.add(layers.Flatten())
    model.add(layers.Dropout(dropout))
    model.add(layers.Dense(n_classes))
    return model


def train_keras_runs(x_train, y_train, subsets, x_valid, y_valid, x_test, y_test, n_classes: int, seeds,
                     config: TrainConfig = TrainConfig(), device: str = "cpu") -> list[dict]:
    """Train one Keras Tiny CNN per subset of training indices, as the original did; the fast engine's contract.

    x_* are MFCCs (n, 99, 32), y_* class ids. Returns [{"test_loss", "test_acc", "epochs"}] in the order
    of `subsets`; epochs counts the epochs run, as the original's len(history.history['loss']).
    device is 'cpu' or 'cuda'.
    """
    import keras

    with keras.device("gpu:0" if device == "cuda" else "cpu:0"):
        return [_train_one(x_train, y_train, subset, x_valid, y_valid, x_test, y_test, n_classes, seed, config)
                for subset, seed in zip(subsets, seeds)]


def _train_one(x_train, y_train, subset, x_valid, y_valid, x_test, y_test, n_classes, seed, config) -> dict:
    """One run exactly as the original's Classification_pruning.py, with the fixes above."""
    import keras

    beta_1, beta_2 = config.adam_betas
    keras.backend.clear_session()
    keras.utils.set_random_seed(int(seed))  # Keras seeds its initialisers, shuffling and dropout globally
    model = tiny_model(n_classes, x_train.shape[1:], config.dropout)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, beta_1, beta_2, config.adam_epsilon),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=config.lr_factor, patience=config.lr_patience,
                                          min_delta=config.min_delta),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.stop_patience, min_delta=config.min_delta,
                                      restore_best_weights=True),
    ]
    history = model.fit(np.asarray(x_train)[subset][..., None], np.asarray(y_train)[subset],
                        batch_size=config.batch_size, epochs=config.max_epochs, shuffle=True,
                        validation_data=(np.asarray(x_valid)[..., None], np.asarray(y_valid)), callbacks=callbacks, verbose=0)
    test_loss, test_acc = model.evaluate(np.asarray(x_test)[..., None], np.asarray(y_test), batch_size=1024, verbose=0)
    return {"test_loss": float(test_loss), "test_acc": float(test_acc), "epochs": len(history.history["loss"])}
