"""A Hugging Face `datasets` dataset as a clip source: one saved with save_to_disk, or a folder of parquet files.

The audio column is read undecoded (Audio(decode=False): the file's bytes) and decoded with soundfile, so
neither FFmpeg nor torchcodec is needed, and nothing is fetched: it works offline. The dataset's own
train / validation / test splits are used; the label column's ClassLabel gives the class names; a speaker
column (speaker_id, speaker or client_id) is used when there is one.
"""

from pathlib import Path

from kwsprune.sources import Clip
from kwsprune.validation import BadClip, InputError

SPLIT_NAMES = {"train": "train", "validation": "valid", "valid": "valid", "dev": "valid", "test": "test"}
SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id")


def open_dataset(path):
    """The DatasetDict at `path`: saved with save_to_disk, or parquet files whose names give their split."""
    try:
        import datasets
    except ImportError:
        raise InputError("--source hf needs the datasets package: pip install .[hf]") from None
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path} is not a folder: pass a dataset saved with save_to_disk or a folder of parquet files")
    try:
        if (path / "dataset_dict.json").exists():
            return datasets.load_from_disk(str(path))
        if any(path.rglob("*.parquet")):
            return datasets.load_dataset("parquet", data_dir=str(path))
    except Exception as err:  # pyarrow's and datasets' own errors for a damaged or foreign file: many kinds
        raise InputError(f"{path} cannot be read as a Hugging Face dataset ({type(err).__name__}: {str(err)[:120]}): save "
                         f"it again with save_to_disk or to_parquet") from None
    raise InputError(f"{path} holds neither a dataset saved with save_to_disk (dataset_dict.json) nor parquet files")


def _class_names(split, column: str, where: str) -> list[str]:
    from datasets import ClassLabel

    feature = split.features[column]
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    if feature.dtype == "string":
        values = split[column]
        if None in values or "" in values:
            raise InputError(f"{where}: row {values.index(None) if None in values else values.index('')} has no label "
                             f"in {column!r}: give every row its class, or leave that row out")
        return sorted(set(values))
    raise InputError(f"{where}: the label column {column!r} holds {feature.dtype} without class names: cast it to a "
                     "ClassLabel (dataset.cast_column(column, ClassLabel(names=[...]))) or store the names")


def _row_names(table, audio_column: str) -> list[str]:
    """The first of: the file column, the audio's file names, that names every row apart; else row numbers."""
    candidates = [table["file"]] if "file" in table.column_names else []
    candidates.append([audio.get("path") for audio in table.select_columns([audio_column])[audio_column]])
    for names in candidates:
        if all(isinstance(name, str) and name for name in names) and len(set(names)) == len(names):
            return list(names)
    return [f"{index:07d}" for index in range(len(table))]


def hf_clips(path, audio_column: str = "audio", label_column: str = "label"):
    """(clips, class names, read) of a Hugging Face dataset; read(clip) gives the bytes of the clip's audio file.

    A clip's relpath is its file column (google/speech_commands has one: 'yes/0a7c2a8d_nohash_0.wav'), else
    the audio's own file name (datasets keeps only the base name), whichever names every row apart, else its
    row number; rows are sorted by it within a split."""
    from datasets import Audio, ClassLabel

    dataset = open_dataset(path)
    splits = {ours: dataset[theirs] for theirs, ours in SPLIT_NAMES.items() if theirs in dataset}
    if set(splits) != {"train", "valid", "test"}:
        raise InputError(f"{path} has the splits {sorted(dataset)}: --source hf needs train, validation and test")
    names = None
    clips, rows = [], {}
    for split, table in splits.items():  # train first: its label names are the classes
        where = f"{path} ({split} split)"
        for column in (audio_column, label_column):
            if column not in table.column_names:
                raise InputError(f"{where} has no column {column!r} (its columns: {table.column_names}): "
                                 "pass --audio-column and --label-column")
        if names is None:
            names = _class_names(table, label_column, where)
            ids = {name: index for index, name in enumerate(names)}
        elif isinstance(table.features[label_column], ClassLabel) and list(table.features[label_column].names) != names:
            raise InputError(f"{where} names other classes than the train split: {table.features[label_column].names} "
                             f"against {names}")
        speaker_column = next((c for c in SPEAKER_COLUMNS if c in table.column_names), None)
        table = table.cast_column(audio_column, Audio(decode=False))
        labels = table[label_column]
        speakers = table[speaker_column] if speaker_column else [""] * len(table)
        files = _row_names(table, audio_column)
        for index, (label, speaker, relpath) in enumerate(zip(labels, speakers, files)):
            if label is None:
                raise InputError(f"{where}: row {index} has no label in {label_column!r}: give every row its class")
            if isinstance(label, str):
                if label not in ids:
                    raise InputError(f"{where}: row {index} has label {label!r}, not one of the train split's "
                                     f"{len(names)} classes")
                label = ids[label]
            if not 0 <= label < len(names):
                raise InputError(f"{where}: row {index} has label {label}, not one of the {len(names)} class names")
            clips.append(Clip(relpath, names[label], str(speaker) or relpath, split))
            rows[split, relpath] = (table, index)

    def read(clip: Clip) -> bytes:
        table, index = rows[clip.split, clip.relpath]
        audio = table[index][audio_column]
        if audio.get("bytes") is not None:
            return audio["bytes"]
        try:
            file = Path(audio["path"])
            if not file.is_file():  # a device or a folder: never read a stream the dataset points at
                raise OSError
            return file.read_bytes()
        except (OSError, TypeError):
            raise BadClip(f"{path}: row {index} of the {clip.split} split holds no audio bytes and its file "
                          f"{audio.get('path')} cannot be read: pass --skip-bad-files to leave it out") from None

    return clips, names, read
