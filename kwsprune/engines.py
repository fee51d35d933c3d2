"""The training engines a sweep can use, and one batched job trained with one of them."""

import logging
import time

from kwsprune.recipe import ENGINES
from kwsprune.training import TrainConfig
from kwsprune.validation import InputError

log = logging.getLogger(__name__)
MAX_MODELS_PER_JOB = 100  # torch engine: models trained together in one batched network


def start_engine(engine: str, device: str, config: TrainConfig):
    """The training function of an engine, the label its rows carry, the device it runs on, and runs per job."""
    from kwsprune.device import cpu_has_bfloat16, keras_device, pick_device

    if engine == "torch":
        from kwsprune.training import train_runs

        device = pick_device(device)
        if config.dtype == "bfloat16" and device == "cpu" and not cpu_has_bfloat16():
            log.warning("--dtype bfloat16 on a CPU without avx512_bf16 or amx_bf16 is emulated: slower than float32")
        return train_runs, "torch", device, MAX_MODELS_PER_JOB
    if engine == "keras":
        from kwsprune.models import model_spec

        if model_spec(config.model).family != "cnn":
            raise InputError(f"--engine keras trains the original's CNNs only, not {config.model}: add --model tiny "
                             f"(or lenet, smallest), or use --engine torch")
        if config.dtype != "float32":
            raise InputError(f"--engine keras trains in float32 only, not {config.dtype}: use --engine torch")
        try:
            from kwsprune.keras_engine import backend_name, train_keras_runs

            label = f"keras-{backend_name()}"
        except ImportError as err:
            raise InputError(f"--engine keras needs Keras 3 and a backend ({err}): pip install .[tensorflow]") from None
        return train_keras_runs, label, keras_device(device), 1  # one run a job: each row lands as its run ends
    raise InputError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")


def train_job(train, data: dict, subsets, seeds, config: TrainConfig, device: str, checkpoint,
              on_epoch=None) -> tuple[list[dict], float]:
    """One batched job on the training data (kwsprune.training_data.load_training_data): its runs' metrics and the seconds
    it took. on_epoch(epoch, models still training) reports its progress."""
    began = time.perf_counter()
    metrics = train(data["x_train"], data["y_train"], subsets, data["x_valid"], data["y_valid"], data["x_test"],
                    data["y_test"], data["n_classes"], seeds, config, device, checkpoint=checkpoint, on_epoch=on_epoch)
    return metrics, time.perf_counter() - began
