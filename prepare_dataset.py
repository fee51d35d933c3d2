"""Step 0: audio into Dataset_as_Numpy/{train,valid,test}_{x,y}.npy, x (n, 16000) float32 normalised per clip.

  python prepare_dataset.py --source synth                              # built-in demo keywords
  python prepare_dataset.py --source speech_commands --path DIR [--download] [--words all]
  python prepare_dataset.py --source fsdd --path free-spoken-digit-dataset
  python prepare_dataset.py --source folder --path DIR [--speaker-regex RE] [--split speakers|lists]
  python prepare_dataset.py --source folder --path DIR --split lists --test-list big_test.txt   # a larger evaluation set
  python prepare_dataset.py --source numpy --path DIR                   # your own {split}_{x,y}.npy
  python prepare_dataset.py --source hf --path DIR                      # a Hugging Face dataset (save_to_disk or parquet)
  python prepare_dataset.py --source fsdd --path DIR --normalise minmax # the original's normalisation
"""

from kwsprune.cli import add_data_root, at_least, run_step, seed, step_parser
from kwsprune.dataset import SOURCES, prepare_dataset
from kwsprune.paths import REPO_ROOT

DATA_ROOT = REPO_ROOT      # step folders (Dataset_as_Numpy/, ...) live under it
SOURCE = "synth"           # speech_commands | folder | fsdd | synth | numpy | hf
WORDS = "core"             # speech_commands/synth: core (yes,no,up,down,left,right,on,off,stop,go) | all | w1,w2,...
SPEAKER_REGEX = None       # folder: first group is the speaker id; default r"^([^_]+)_" (Speech Commands names)
N_SPEAKERS = 300           # synth: speakers (voice x variant x rate x pitch), each says every word once
SEED = 0                   # synth: everything drawn from it; folder --split speakers: the speakers' order
NORMALISE = None           # peak (largest |sample| = 1) | minmax (the original's: into [0, 1]) | none; None: peak, none for numpy
SKIP_BAD_FILES = False     # leave out bad audio files (listed in skipped_files.txt) instead of stopping at the first
DROP_DUPLICATES = False    # leave out byte-identical files that span classes or splits instead of refusing them
SPLIT = "hash"             # folder: hash (Speech Commands' speaker sha1 rule) | speakers (seeded, by speaker) | lists
VERSION = "0.02"           # speech_commands --download: archive version (0.01 or 0.02)
THREADS = 4                # file reading threads
AUDIO_COLUMN = "audio"     # hf: the column of audio files (read undecoded, decoded with soundfile)
LABEL_COLUMN = "label"     # hf: the column of class labels
VALID_LIST = None          # speech_commands, folder --split lists: a validation list in place of --path's validation_list.txt
TEST_LIST = None           # the same for testing_list.txt: a larger evaluation set, its speakers checked against training's


def main(argv=None):
    parser = step_parser(__doc__)
    add_data_root(parser, DATA_ROOT)
    parser.add_argument("--source", default=SOURCE, choices=SOURCES)
    parser.add_argument("--path", help="the source folder (all sources but synth)")
    parser.add_argument("--words", default=WORDS, help="core | all | comma-separated words (default: %(default)s)")
    parser.add_argument("--speaker-regex", default=SPEAKER_REGEX, help="folder source: regex whose first group is the speaker id")
    parser.add_argument("--no-resample", dest="resample", action="store_false",
                        help="refuse clips not at 16 kHz instead of resampling them")
    parser.add_argument("--n-speakers", type=at_least(1), default=N_SPEAKERS, help="synth: number of speakers (default: %(default)s)")
    parser.add_argument("--seed", type=seed, default=SEED,
                        help="synth: random seed; folder --split speakers: the speakers' order (default: %(default)s)")
    parser.add_argument("--download", action="store_true", help="speech_commands: fetch the official archive into --path")
    parser.add_argument("--version", default=VERSION, choices=("0.01", "0.02"), help="speech_commands --download version")
    parser.add_argument("--threads", type=at_least(1), default=THREADS, help="file reading threads (default: %(default)s)")
    parser.add_argument("--normalise", default=NORMALISE, choices=("peak", "minmax", "none"),
                        help="per clip: peak (largest |sample| = 1; the default for audio), minmax (the original's, "
                             "into [0, 1]) or none (the default for --source numpy)")
    parser.add_argument("--split", default=SPLIT, choices=("hash", "speakers", "lists"),
                        help="folder: hash (Speech Commands' speaker sha1 rule), speakers (80/10/10 by speaker in a "
                             "--seed order, no split empty with 3 speakers or more) or lists (validation_list.txt and "
                             "testing_list.txt in --path) (default: %(default)s)")
    parser.add_argument("--skip-bad-files", action="store_true", default=SKIP_BAD_FILES,
                        help="leave out unreadable, truncated, empty, non-finite, too short (< 0.1 s) or silent files, "
                             "listed with the reason in Dataset_as_Numpy/skipped_files.txt, instead of stopping")
    parser.add_argument("--drop-duplicates", action="store_true", default=DROP_DUPLICATES,
                        help="leave out every copy of a byte-identical file found in two classes or splits (listed in "
                             "Dataset_as_Numpy/skipped_files.txt) instead of refusing the dataset")
    parser.add_argument("--audio-column", default=AUDIO_COLUMN, help="hf: the audio column (default: %(default)s)")
    parser.add_argument("--label-column", default=LABEL_COLUMN,
                        help="hf: the label column, a ClassLabel or strings (default: %(default)s)")
    parser.add_argument("--valid-list", default=VALID_LIST,
                        help="speech_commands, folder --split lists: the validation list to read in place of --path's "
                             "validation_list.txt (one path a line, relative to --path)")
    parser.add_argument("--test-list", default=TEST_LIST,
                        help="the same for testing_list.txt: e.g. a larger evaluation set; a test speaker who also speaks "
                             "in training is named (verdicts then speak of new clips of the test speakers, not of new ones)")
    args = parser.parse_args(argv)
    manifest = run_step(
        prepare_dataset, args.data_root, args.source, args.path, args.words, args.speaker_regex, args.resample,
        args.n_speakers, args.seed, args.download, args.version, args.threads, args.normalise, args.split,
        args.skip_bad_files, args.audio_column, args.label_column, args.drop_duplicates, args.valid_list, args.test_list,
    )
    for name, record in manifest["files"].items():
        if name.endswith("_x.npy"):
            print(f"{name:12s} {tuple(record['shape'])}")


if __name__ == "__main__":
    main()
