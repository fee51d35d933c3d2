"""The reference engine: the original's Keras CNNs, one run after another with `model.fit` and its callbacks.

It exists to check the fast batched engine (kwsprune.training) against the original's framework. Keras 3
runs on the backend that KERAS_BACKEND names before the first import: tensorflow (Keras' default and the
original's; `pip install .[tensorflow]`) or torch (`pip install keras`). As in the fast engine, the last
layer gives logits to a from-logits loss and every run is seeded.
"""

import numpy as np

from kwsprune.models import architecture
from kwsprune.training import TrainConfig


def backend_name() -> str:
    """'tensorflow', 'torch', ... : the backend Keras runs on in this process."""
    import keras

    return keras.backend.backend()


def keras_model(name: str, n_classes: int, input_shape=(99, 32), dropout: float = 0.1):
    """The original's Sequential CNN `name` (kwsprune.models) on (99, 32, 1) MFCCs, ending in logits."""
    import keras
    from keras import layers

    arch = architecture(name)
    model = keras.Sequential([keras.Input((*input_shape, 1))])
    for _, filters, kernel in arch.convs:
        model.add(layers.Conv2D(filters, kernel, activation="relu"))
        model.add(layers.AveragePooling2D(2))
    model.add(layers.Flatten())
    widths = [*arch.hidden, n_classes]
    for i, (units, with_dropout) in enumerate(zip(widths, arch.dropout)):
        if with_dropout:
            model.add(layers.Dropout(dropout))
        model.add(layers.Dense(units, activation="relu" if i < len(widths) - 1 else None))
    return model


def early_stopping(config: TrainConfig):
    """EarlyStopping that restores the best weights as config.restore_best says: Keras 3 restores them whenever
    training ends; the Keras of 2023 ("on-stop") only when early stopping ended it."""
    import keras

    class RestoreOnStop(keras.callbacks.EarlyStopping):
        def on_train_end(self, logs=None):
            if self.stopped_epoch > 0:
                super().on_train_end(logs)

    kind = keras.callbacks.EarlyStopping if config.restore_best == "always" else RestoreOnStop
    return kind(monitor="val_loss", patience=config.stop_patience, min_delta=config.min_delta, restore_best_weights=True)


def train_keras_runs(x_train, y_train, subsets, x_valid, y_valid, x_test, y_test, n_classes: int, seeds,
                     config: TrainConfig = TrainConfig(), device: str = "cpu", checkpoint=None, on_epoch=None) -> list[dict]:
    """Train one Keras model per subset of training indices, as the original did; the fast engine's contract.

    x_* are MFCCs (n, 99, 32), y_* class ids. Returns [{"test_loss", "test_acc", "epochs", "predicted"}] in the order
    of `subsets`; epochs counts the epochs run, as the original's len(history.history['loss']).
    device is 'cpu' or 'cuda'. checkpoint and on_epoch are not used: the sweep gives this engine one run a job,
    whose row lands when it ends, so a kill loses at most the run in flight.
    """
    import keras

    with keras.device("gpu:0" if device == "cuda" else "cpu:0"):
        return [_train_one(x_train, y_train, subset, x_valid, y_valid, x_test, y_test, n_classes, seed, config)
                for subset, seed in zip(subsets, seeds)]


def _train_one(x_train, y_train, subset, x_valid, y_valid, x_test, y_test, n_classes, seed, config) -> dict:
    """One run as the original's Classification_pruning.py, with the fixes above."""
    import keras

    beta_1, beta_2 = config.adam_betas
    keras.backend.clear_session()
    keras.utils.set_random_seed(int(seed))  # Keras seeds its initialisers, shuffling and dropout globally
    model = keras_model(config.model, n_classes, x_train.shape[1:], config.dropout)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, beta_1, beta_2, config.adam_epsilon),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=config.lr_factor, patience=config.lr_patience,
                                          min_delta=config.min_delta),
        early_stopping(config),
    ]
    history = model.fit(np.asarray(x_train)[subset][..., None], np.asarray(y_train)[subset],
                        batch_size=config.batch_for(len(subset)), epochs=config.max_epochs, shuffle=True,
                        validation_data=(np.asarray(x_valid)[..., None], np.asarray(y_valid)), callbacks=callbacks, verbose=0)
    test_loss, test_acc = model.evaluate(np.asarray(x_test)[..., None], np.asarray(y_test), batch_size=1024, verbose=0)
    logits = model.predict(np.asarray(x_test)[..., None], batch_size=1024, verbose=0)
    return {"test_loss": float(test_loss), "test_acc": float(test_acc), "epochs": len(history.history["loss"]),
            "predicted": np.asarray(logits).argmax(axis=1).astype(np.int16)}
