"""The sweep's training jobs on Dask distributed workers (`run_all_classifications.py --backend dask`).

The driver submits each batched job; a worker trains it on the training data it reads itself from the data
root, which must be the same path on every machine (a shared filesystem; on one machine, the same folder),
checked against the driver's data id; it returns the job's metrics and only the driver writes results/. A job
whose worker fails is retried (its checkpoint in results/.checkpoints/ lets the retry resume where it was).
"""

import functools
import logging
import re
import tempfile
import zipfile
from pathlib import Path

import kwsprune

from kwsprune.device import available_cores
from kwsprune.validation import InputError

log = logging.getLogger(__name__)
RETRIES = 2  # a job is tried again this often when its worker raises or dies
PROGRESS = "kwsprune-progress"  # the topic on which workers report (job, epoch, models training) to the driver


SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")  # what docs/ support


def check_scheduler(scheduler: str | None, backend: str) -> None:
    """Refuse, before any work, a --scheduler without --backend dask, an address that is not one, and tls:// without
    the certificates in the Dask configuration."""
    if scheduler is None:
        return
    if backend != "dask":
        raise InputError(f"--scheduler {scheduler} is for --backend dask: add --backend dask, or leave --scheduler out")
    match = SCHEDULER_ADDRESS.match(scheduler)
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise InputError(f"--scheduler {scheduler!r} is not a scheduler's address: give tls://HOST:PORT or tcp://HOST:PORT, "
                         "as `dask scheduler` prints it")
    if match.group(1) == "tls":
        try:
            from distributed.security import Security
        except ImportError:
            raise InputError("--backend dask needs Dask distributed: pip install .[dask]") from None

        security = Security()  # the certificates of the user's Dask configuration
        missing = [key for key, value in (("ca-file", security.tls_ca_file), ("client.cert", security.tls_client_cert))
                   if not value]
        if missing:
            raise InputError(f"--scheduler {scheduler}: TLS needs distributed.comm.tls.{' and distributed.comm.tls.'.join(missing)} "
                             "in the Dask configuration (~/.config/dask/*.yaml, or DASK_DISTRIBUTED__COMM__TLS__CA_FILE "
                             "and the like): see 'Dask' in docs/pipeline.md")
    elif match.group(2) not in ("localhost", "127.0.0.1", "[::1]"):
        log.warning("--scheduler %s is not encrypted: whoever reaches its port can run code on its workers and read "
                    "the data root; prefer tls:// (see 'Dask' in docs/pipeline.md)", scheduler)


def open_client(scheduler: str | None, workers: int):
    """A Client of the scheduler at `scheduler`, or of a LocalCluster of `workers` processes sharing the cores."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--backend dask needs Dask distributed: pip install .[dask]") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=30)
        except OSError as err:
            raise InputError(f"--scheduler {scheduler}: no Dask scheduler answers there ({err}): start one with "
                             "`dask scheduler`, or leave --scheduler out for a local cluster") from None
        except (MemoryError, ValueError, TypeError) as err:  # another server's bytes read as Dask's frame lengths
            raise InputError(f"--scheduler {scheduler}: what answers there is not a Dask scheduler ({type(err).__name__}): "
                             "check the port `dask scheduler` printed") from None
        _upload_code(client)
        return client
    logging.getLogger("distributed").setLevel(logging.WARNING)  # the cluster's start and stop are not news
    threads = max(1, available_cores() // workers)
    client = Client(LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, host="127.0.0.1",
                                dashboard_address="127.0.0.1:0"))  # this machine only
    log.info("Dask dashboard: %s", client.dashboard_link)
    return client


def _upload_code(client) -> None:
    """Send this driver's kwsprune package to every worker (and to those that join later), so that the rows it
    writes carry the code that trained them; workers need only its dependencies installed."""
    package = Path(kwsprune.__file__).parent
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "kwsprune.zip"
        with zipfile.ZipFile(archive, "w") as zipped:
            for source in sorted(package.glob("*.py")):
                zipped.write(source, f"kwsprune/{source.name}")
        client.upload_file(str(archive))


@functools.lru_cache(maxsize=2)
def _training_data(data_root: str, data_id: str, model: str) -> dict:
    from kwsprune.training_data import load_training_data

    data = load_training_data(data_root, model)
    if data["id"] != data_id:
        raise InputError(f"a worker reads other training data at {data_root} (id {data['id']}, the driver's is "
                         f"{data_id}): give every worker the same data root, e.g. on a shared filesystem")
    return data


def run_job(index: int, data_root: str, data_id: str, engine: str, device: str, config, subsets, seeds, checkpoint):
    """On a worker: job `index`; reports its epochs to the driver and returns (metrics, seconds, the device it ran on)."""
    import torch
    from distributed import get_worker

    from kwsprune.engines import start_engine, train_job

    worker = get_worker()
    torch.set_num_threads(worker.state.nthreads)
    train, _, device, _ = start_engine(engine, device, config)
    metrics, seconds = train_job(train, _training_data(data_root, data_id, config.model), subsets, seeds, config, device, checkpoint,
                                 on_epoch=lambda epoch, training: worker.log_event(PROGRESS, [index, epoch, training]))
    return metrics, seconds, device


def train_jobs(client, data_root, data_id: str, engine: str, device: str, config, jobs, show):
    """Submit jobs [(subsets, seeds, checkpoint)] and yield (index, (metrics, seconds, device)) as each finishes;
    show(index, epoch, models training) sees the workers' progress."""
    from distributed import as_completed

    client.subscribe_topic(PROGRESS, lambda event: show(*event[1]))
    futures = {client.submit(run_job, index, str(data_root), data_id, engine, device, config, subsets, seeds,
                             checkpoint, retries=RETRIES, pure=False): index
               for index, (subsets, seeds, checkpoint) in enumerate(jobs)}
    log.info("%d jobs submitted to %d Dask workers", len(futures), len(client.scheduler_info()["workers"]))
    for future in as_completed(futures):
        yield futures[future], future.result()
