"""Step 2: MFCCs of every split -> MFCCs/{train,valid,test}_MFCCs.npy, (n, 99, 32) float32.

Defaults are the original's: python_speech_features.mfcc(signal, 16000, numcep=32, nfilt=32).

  python extract_mfccs.py                                 # the original's MFCCs (tiny, ds-cnn-s, ...)
  python extract_mfccs.py --features logmel --nfilt 40    # 40 log-mel bands, (n, 99, 40): what BC-ResNet reads
"""

from kwsprune.cli import add_data_root, at_least, run_step, step_parser
from kwsprune.mfcc import DEFAULTS, extract_mfccs
from kwsprune.paths import REPO_ROOT

DATA_ROOT = REPO_ROOT
NUMCEP = 32                # cepstral coefficients kept
NFILT = 32                 # mel filters
FEATURES = "mfcc"          # mfcc | logmel: the log mel energies before the DCT (numcep is then nfilt)
BATCH_SIZE = 1024          # clips in memory at once


def main(argv=None):
    parser = step_parser(__doc__)
    add_data_root(parser, DATA_ROOT)
    parser.add_argument("--numcep", type=at_least(1), default=NUMCEP)
    parser.add_argument("--nfilt", type=at_least(1, most=DEFAULTS["nfft"] // 2 + 1), default=NFILT,
                        help="mel filters, at most one per FFT bin (default: %(default)s)")
    parser.add_argument("--features", default=FEATURES, choices=("mfcc", "logmel"),
                        help="mfcc (the original's) or logmel: log mel energies, one per filter (default: %(default)s)")
    parser.add_argument("--batch-size", type=at_least(1), default=BATCH_SIZE)
    args = parser.parse_args(argv)
    manifest = run_step(extract_mfccs, args.data_root, args.batch_size, numcep=args.numcep, nfilt=args.nfilt,
                        features=args.features)
    for name, record in manifest["files"].items():
        print(f"{name:18s} {tuple(record['shape'])}")


if __name__ == "__main__":
    main()
