"""Step 1: embeddings of the training clips from a pretrained speech model -> wav2vec_features/.

  python extract_embeddings.py                                   # wav2vec 2.0 base (the original's)
  python extract_embeddings.py --model speech-embedding          # built-in, offline, fast on a CPU
  python extract_embeddings.py --model /path/to/checkpoint --layer 6 --pooling flatten
"""

from kwsprune.cli import add_data_root, at_least, run_step, step_parser
from kwsprune.embeddings import DEFAULT_MODEL, POOLINGS, extract_embeddings
from kwsprune.paths import REPO_ROOT

DATA_ROOT = REPO_ROOT
MODEL = DEFAULT_MODEL      # hub id, local folder (save_pretrained), or speech-embedding
LAYER = None               # hidden state to take; None = the last (0 = the CNN encoder's output)
POOLING = "mean"           # mean: (n, dim); flatten: (n, frames * dim), the original's 49 x 768
BATCH_SIZE = 32
DEVICE = "auto"            # auto | cpu | cuda
DTYPE = "float32"          # storage dtype: float32 | float16


def main(argv=None):
    parser = step_parser(__doc__)
    add_data_root(parser, DATA_ROOT)
    parser.add_argument("--model", default=MODEL, help="hub id, local folder or speech-embedding (default: %(default)s)")
    parser.add_argument("--layer", type=int, default=LAYER, help="hidden-state index (default: the last)")
    parser.add_argument("--pooling", default=POOLING, choices=POOLINGS)
    parser.add_argument("--batch-size", type=at_least(1), default=BATCH_SIZE)
    parser.add_argument("--device", default=DEVICE, choices=("auto", "cpu", "cuda"))
    parser.add_argument("--dtype", default=DTYPE, choices=("float16", "float32"), help="storage dtype")
    args = parser.parse_args(argv)
    manifest = run_step(extract_embeddings, args.data_root, args.model, args.layer, args.pooling,
                        args.batch_size, args.device, args.dtype)
    record = manifest["files"]["train_features.npy"]
    print(f"train_features.npy {tuple(record['shape'])} {record['dtype']}  ({manifest['params']['model']})")


if __name__ == "__main__":
    main()
