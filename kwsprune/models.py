"""Every model kwsprune trains, in one registry (MODELS), and the original's three CNNs on (99, 32) MFCCs.

Three families: the original's CNNs ("cnn", trained by kwsprune.training's engine from these layer lists, which
the Keras engine builds from too); keyword-spotting networks of the literature ("kws", kwsprune.networks),
trained from scratch by the same engine; and heads on a frozen pretrained speech model's embeddings ("head",
kwsprune.heads). Adding a model is one entry here (and its builder in its family's module).

The original's Classification_pruning.py trains "Tiny" and keeps "Smallest" and "LeNet" commented out
beside it. Every convolution is followed by ReLU and 2 x 2 average pooling; after flattening come ReLU
dense layers and the output layer (logits); dropout (rate 0.1) sits where the original put it.
"""

from dataclasses import dataclass

from kwsprune.validation import InputError

FAMILIES = ("cnn", "kws", "head")
INPUTS = ("mfcc", "logmel", "embeddings")  # what a model reads: MFCCs/ (--features mfcc or logmel), or wav2vec_features/


@dataclass(frozen=True)
class ModelSpec:
    family: str  # one of FAMILIES
    inputs: str  # one of INPUTS
    recipe: str  # the recipe it trains with unless --recipe names another (kwsprune.training.RECIPES)
    about: str   # where it comes from, in a line


MODELS = {
    "tiny": ModelSpec("cnn", "mfcc", "kwsprune", "the original's Tiny CNN (2,206 weights for 10 classes)"),
    "smallest": ModelSpec("cnn", "mfcc", "kwsprune", "the original's Smallest CNN"),
    "lenet": ModelSpec("cnn", "mfcc", "kwsprune", "the original's LeNet"),
    "ds-cnn-s": ModelSpec("kws", "mfcc", "ds-cnn", "DS-CNN small, Zhang et al. 2017 (Hello Edge), 64 channels"),
    "ds-cnn-m": ModelSpec("kws", "mfcc", "ds-cnn", "DS-CNN medium, Zhang et al. 2017 (Hello Edge), 172 channels"),
    "bc-resnet-1": ModelSpec("kws", "logmel", "bc-resnet", "BC-ResNet-1, Kim et al. 2021, on 40 log-mel bands"),
    "bc-resnet-3": ModelSpec("kws", "logmel", "bc-resnet", "BC-ResNet-3, Kim et al. 2021, on 40 log-mel bands"),
    "logreg": ModelSpec("head", "embeddings", "head", "logistic regression on frozen embeddings (standardised, C = 1)"),
}


def model_spec(name: str) -> ModelSpec:
    """The registry's entry of --model name; an unknown name is refused with the valid ones."""
    if name not in MODELS:
        raise InputError(f"--model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]


def is_head(name: str) -> bool:
    """Whether --model name is a head on frozen embeddings: fitted to convergence, with no epochs, batches or seed
    (an unknown name, e.g. from a stranger's row, is not one)."""
    spec = MODELS.get(name)
    return spec is not None and spec.family == "head"


@dataclass(frozen=True)
class Architecture:
    convs: tuple    # (in channels, out channels, (kernel over time, kernel over cepstra)) per convolution
    hidden: tuple   # widths of the ReLU dense layers between the flattened maps and the output layer
    dropout: tuple  # per dense layer, hidden ones then the output: is dropout applied to its input?


CNNS = {
    "tiny": Architecture(((1, 4, (2, 2)), (4, 8, (2, 2)), (8, 8, (4, 2)), (8, 16, (4, 2))), (), (True,)),
    "smallest": Architecture(((1, 3, (2, 2)), (3, 8, (5, 3)), (8, 16, (5, 3))), (84,), (False, True)),
    "lenet": Architecture(((1, 6, (2, 2)), (6, 16, (5, 3))), (120, 84), (False, True, True)),
}


def architecture(name: str) -> Architecture:
    """The layers of one of the original's CNNs."""
    if name not in CNNS:
        raise InputError(f"--model {name!r} is not one of the original's CNNs ({', '.join(CNNS)})")
    return CNNS[name]


def conv_shapes(name: str, input_shape=(99, 32)) -> list[tuple]:
    """(in channels, out channels, (kernel h, w), convolution output (h, w), pooled (h, w)) of each convolution,
    for one clip of input_shape: the one walk through the layer shapes that sizes, FLOPs and traffic come from."""
    height, width = input_shape
    shapes = []
    for cin, cout, (kh, kw) in architecture(name).convs:
        conv = (height - kh + 1, width - kw + 1)
        height, width = conv[0] // 2, conv[1] // 2
        shapes.append((cin, cout, (kh, kw), conv, (height, width)))
    return shapes


def flat_features(name: str, input_shape=(99, 32)) -> int:
    """Size of the flattened last feature map: 48 for Tiny on (99, 32) MFCCs."""
    _, cout, _, _, (height, width) = conv_shapes(name, input_shape)[-1]
    if height < 1 or width < 1:
        raise InputError(f"MFCC input {tuple(input_shape)} is too small for the {name} CNN")
    return cout * height * width


def dense_layers(name: str, n_classes: int, input_shape=(99, 32)) -> list[tuple[int, int]]:
    """(inputs, outputs) of each dense layer, the output layer last."""
    widths = [flat_features(name, input_shape), *architecture(name).hidden, n_classes]
    return list(zip(widths[:-1], widths[1:]))


def n_parameters(name: str, n_classes: int, input_shape=(99, 32)) -> int:
    """Trainable parameters: Tiny 2,206 / 3,431, Smallest 27,445 / 29,570, LeNet 266,060 / 268,185 for 10 / 35 classes."""
    convs = sum(cout * cin * kh * kw + cout for cin, cout, (kh, kw) in architecture(name).convs)
    return convs + sum(n_in * n_out + n_out for n_in, n_out in dense_layers(name, n_classes, input_shape))


def forward_flops(name: str, n_classes: int, input_shape=(99, 32)) -> float:
    """Floating-point operations (multiply-adds x 2) of one clip through the CNN: 0.43 M for Tiny."""
    flops = sum(2.0 * h * w * cout * cin * kh * kw for cin, cout, (kh, kw), (h, w), _ in conv_shapes(name, input_shape))
    return flops + sum(2 * n_in * n_out for n_in, n_out in dense_layers(name, n_classes, input_shape))


def feature_map_values(name: str, input_shape=(99, 32)) -> int:
    """Values one clip's forward pass reads and writes: the input, each convolution's output and its pooled
    map (a floor on the memory traffic a step moves per clip, before the backward pass doubles it)."""
    return input_shape[0] * input_shape[1] + sum(cout * (h * w + ph * pw)
                                                 for _, cout, _, (h, w), (ph, pw) in conv_shapes(name, input_shape))


def n_weights(name: str, n_classes: int, input_shape) -> int:
    """Trainable weights of one model of any family, for inputs of input_shape ((frames, coefficients) or (dim,))."""
    family = model_spec(name).family
    if family == "cnn":
        return n_parameters(name, n_classes, tuple(input_shape))
    if family == "kws":
        from kwsprune import networks

        return networks.n_parameters(name, n_classes)
    return (input_shape[-1] + 1) * n_classes


def flops(name: str, n_classes: int, input_shape) -> float:
    """Floating-point operations of one clip's forward pass through a model of any family."""
    family = model_spec(name).family
    if family == "cnn":
        return forward_flops(name, n_classes, tuple(input_shape))
    if family == "kws":
        from kwsprune import networks

        return networks.forward_flops(name, n_classes, tuple(input_shape))
    return 2.0 * input_shape[-1] * n_classes
