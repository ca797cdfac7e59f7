"""What one training run is: a TrainConfig, the article presets, and the checks on user-given values."""

import dataclasses
import json
import types
import typing

from graph_nn.core.errors import GraphNNError
from graph_nn.core.run_dir import RunDir, write_atomically

MODELS = ("mlp64", "mlp512", "mlp5", "cnn", "mlp500", "deep")
# What the model names build (graph_nn/graph/model.py, and their Keras twins in keras_baselines.py).
HIDDEN_UNITS = {"mlp64": (64,), "mlp512": (512,), "mlp5": (256, 128, 64, 32), "mlp500": (500,)}  # Dense relu layers
CNN_FILTERS = (32, 64, 128)  # 3x3 convolutions; the first two are followed by a 2x2 max-pool
DEEP_FILTERS = (32, 64)  # mnist_deep.py's 5x5 SAME convolutions, each followed by a 2x2 max-pool
DEEP_UNITS = 1024  # mnist_deep.py's dense relu layer before the output
INITS = ("glorot_uniform", "random_normal", "truncated_normal")
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
SEMANTICS = ("tf1", "keras")  # whose optimizer formulas and defaults graph mode uses
BATCHING = ("shuffle", "sequential")
LR_SCHEDULES = ("constant", "exponential", "piecewise", "cosine", "polynomial")
INPUTS = ("feed", "dataset", "queue", "tfrecord")  # where a train step's batch comes from (graph/input_pipelines.py)
CONTROL_FLOWS = ("v1", "v2")  # TF1's while_loop frame, or TF2's functional While (graph_nn/graph/in_graph_loop.py)
# Grappler's passes as its meta-optimizer log names them, and the RewriterConfig field that switches each off
# (graph_nn/graph/sessions.py sets it); --rewrite-off takes the names.  "meta_optimizer" is all of them at once.
GRAPPLER_PASSES = {
    "model_pruner": "disable_model_pruning",
    "implementation_selector": "implementation_selector",
    "function_optimizer": "function_optimization",
    "common_subgraph_elimination": "common_subgraph_elimination",
    "constant_folding": "constant_folding",
    "shape_optimizer": "shape_optimization",
    "arithmetic_optimizer": "arithmetic_optimization",
    "layout": "layout_optimizer",
    "remapper": "remapping",
    "loop_optimizer": "loop_optimization",
    "dependency_optimizer": "dependency_optimization",
    "memory_optimizer": "memory_optimization",
    "tfg_optimizer": "disable_tfg_optimizer",
    "meta_optimizer": "disable_meta_optimizer",
}


@dataclasses.dataclass
class TrainConfig:
    model: str = "mlp512"
    init: str = "glorot_uniform"
    optimizer: str = "rmsprop"
    semantics: str = "tf1"
    learning_rate: float = 1e-3
    momentum: float | None = None  # None: 0.9 for the momentum optimizer, 0 (none) for RMSprop
    rho: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float | None = None  # None: the optimizer's own default under `semantics`
    batch_size: int = 128
    epochs: int = 5
    steps: int | None = None  # when set, the run is counted in steps instead of epochs
    batching: str = "shuffle"
    seed: int = 0
    eval_every: int | None = None  # steps between evaluations; None: once per epoch
    validation_split: int = 0  # the last N training examples validate; 0: the test set does (as the articles)
    early_stop: int | None = None  # evaluations without a lower validation loss that end the run
    print_every: int | None = None  # steps between printed lines; None: a progress bar per epoch
    log_every: int = 50  # steps between train-scalar summaries
    histogram_every: int = 200  # steps between histogram summaries
    variable_summaries: bool = False  # each weight's mean, stddev, min and max scalars, at the histogram steps
    checkpoint_every: int | None = None  # steps between extra checkpoints
    trace_steps: tuple[int, ...] = ()  # global steps whose training sess.run is fully traced (RunMetadata)
    profile_steps: tuple[int, ...] = ()  # (first, last): the global steps tf.profiler records, for the Profile tab
    debug_dump: bool = False  # a Debugger V2 dump of the training graph's executions
    steps_per_run: int = 1  # training steps per Session.run; above 1 a while_loop runs them inside the graph
    rewrites_off: tuple[str, ...] = ()  # Grappler passes switched off in the training session (GRAPPLER_PASSES)
    xla: bool = False  # XLA auto-clustering of the training session
    # The TF1 idioms (graph_nn/graph/model.py); their defaults build the graph of a run from before them.
    dropout: float = 0.0  # the rate dropped from the hidden layers' outputs (the CNN's dense input) in training
    batch_norm: bool = False  # batch normalization before each hidden layer's ReLU
    l2: float = 0.0  # λ of the weight decay λ·Σw² of every kernel (Keras's l2(λ)), added to the loss
    ema: float | None = None  # the decay of an exponential moving average of the weights, kept beside them
    lr_schedule: str = "constant"  # LR_SCHEDULES: the learning rate as a function of the global step
    decay_steps: int | None = None  # exponential, cosine, polynomial: the steps of one decay (of the whole decay)
    decay_rate: float | None = None  # exponential: the factor per decay_steps
    boundaries: tuple[int, ...] = ()  # piecewise: the global steps where the rate changes
    values: tuple[float, ...] = ()  # piecewise: the rates, one more than the boundaries
    end_lr: float | None = None  # cosine, polynomial: the rate at decay_steps and after (default 0)
    staircase: bool = False  # exponential: decay at whole multiples of decay_steps only
    input: str = "feed"  # INPUTS: feed_dict, or a pipeline in the graph drawing the same batches
    towers: int = 1  # copies of the model in one graph, one per device, splitting each batch (graph/towers.py)
    preset: str | None = None

    def __post_init__(self):
        if self.momentum is None:
            self.momentum = 0.9 if self.optimizer == "momentum" else 0.0
        # config.json gives lists back
        self.trace_steps, self.profile_steps = tuple(self.trace_steps), tuple(self.profile_steps)
        self.rewrites_off = tuple(self.rewrites_off)
        self.boundaries, self.values = tuple(self.boundaries), tuple(self.values)

    @property
    def validation(self):
        """What the run validates on, in words."""
        if self.validation_split:
            return f"the last {self.validation_split:,} training examples"
        return "the test set"

    @property
    def final_checkpoint(self):
        """The checkpoint that is the run's result: with early stopping its best (lowest validation loss), else
        its last, as Keras's EarlyStopping(restore_best_weights=True) and fit() leave them."""
        return "best" if self.early_stop else "latest"

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """The TrainConfig of a config.json; ValueError when the text is no JSON object of TrainConfig's fields,
        each of its type (a file edited by hand), and ForeignConfig when it lacks keys every graph_nn has written
        or holds keys none has (another tool's file, or a newer graph_nn's): it is never half-read."""
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ForeignConfig(f"a JSON {type(values).__name__}, not an object of TrainConfig's fields")
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        missing = [key for key in FIRST_KEYS if key not in values]
        unknown = [key for key in values if key not in fields]
        if missing:
            raise ForeignConfig(f"no {few(missing)}: keys every graph_nn run has")
        if unknown:
            raise ForeignConfig(f"{few(unknown)}: unknown to this graph_nn")
        for key, value in values.items():
            if not fits(value, fields[key]):
                raise ValueError(f"{key} is {json.dumps(value)}, where graph_nn writes {kind_name(fields[key])}")
        return cls(**values)


# The keys of graph_nn's first config.json, which every one since has: a config.json without them is not a run's.
# Fields added since have defaults that rebuild a run made before them.
FIRST_KEYS = (
    "model", "init", "optimizer", "semantics", "learning_rate", "momentum", "rho", "beta1", "beta2", "epsilon",
    "batch_size", "epochs", "steps", "batching", "seed", "eval_every", "print_every", "log_every",
    "histogram_every", "checkpoint_every", "preset",
)  # fmt: skip
JSON_KINDS = {int: "a whole number", float: "a number", str: "a string", bool: "true or false", type(None): "null"}


class ForeignConfig(ValueError):
    """A config.json that is not a graph_nn run's."""


def fits(value, kind):
    """Does a value read from JSON have the type of a TrainConfig field (int, float, str, bool, tuple[X, ...],
    X | None)?  A whole number fits a float field; true and false are no numbers."""
    if isinstance(kind, types.UnionType):
        return any(fits(value, k) for k in typing.get_args(kind))
    if typing.get_origin(kind) is tuple:
        return isinstance(value, list) and all(fits(item, typing.get_args(kind)[0]) for item in value)
    if kind in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, (int, float) if kind is float else kind)


def few(names):
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def kind_name(kind):
    if isinstance(kind, types.UnionType):
        return " or ".join(map(kind_name, typing.get_args(kind)))
    if typing.get_origin(kind) is tuple:
        return f"a list of {kind_name(typing.get_args(kind)[0]).removeprefix('a ')}s"
    return JSON_KINDS[kind]


PRESETS = {
    # Article 003 (TF1): 784-64-10, random_normal(stddev=1) weights and biases, SGD 0.1, batch 100,
    # 2000 steps over the slices x[(i*100) % 59900 : ... + 100], loss printed every 100 steps.
    "tf1": dict(
        model="mlp64",
        init="random_normal",
        optimizer="sgd",
        learning_rate=0.1,
        batch_size=100,
        steps=2000,
        batching="sequential",
        print_every=100,
        eval_every=500,
    ),
    # Articles 000/002 (Deep Learning with Python, chapter 2): Dense 512 relu + Dense 10, RMSprop, batch 128, 5 epochs.
    "chapter2": dict(model="mlp512", optimizer="rmsprop", learning_rate=1e-3, batch_size=128, epochs=5),
    # Article 001: Dense 256-128-64-32-10, Adam lr 0.01, batch 128, 5 epochs.
    "five-layer": dict(model="mlp5", optimizer="adam", learning_rate=0.01, batch_size=128, epochs=5),
    # Article 004: Conv32-Pool-Conv64-Pool-Conv128-Dense10, RMSprop, batch 64, 5 epochs.
    "cnn": dict(model="cnn", optimizer="rmsprop", learning_rate=1e-3, batch_size=64, epochs=5),
    # TensorFlow's tutorial mnist_deep.py: Conv 5x5 32 SAME + pool, Conv 5x5 64 SAME + pool, Dense 1024 relu with
    # dropout keep_prob 0.5, Dense 10; truncated_normal(stddev 0.1) weights, 0.1 biases; Adam 1e-4, batch 50,
    # 20,000 steps, the batch's accuracy printed every 100.  It evaluates once at the end; every 2,000 steps here.
    "deep": dict(
        model="deep",
        init="truncated_normal",
        optimizer="adam",
        learning_rate=1e-4,
        batch_size=50,
        steps=20000,
        dropout=0.5,
        print_every=100,
        eval_every=2000,
    ),
    # TensorFlow's tutorial mnist_with_summaries.py: 784-500-10, dropout keep_prob 0.9, truncated_normal(stddev 0.1)
    # weights, 0.1 biases, Adam 1e-3, batch 100, 1,000 steps, the test set evaluated every 10 steps, and
    # variable_summaries(): each weight's mean, stddev, max, min and histogram, all every 10 steps here.
    "summaries": dict(
        model="mlp500",
        init="truncated_normal",
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=100,
        steps=1000,
        dropout=0.1,
        eval_every=10,
        log_every=10,
        histogram_every=10,
        variable_summaries=True,
    ),
}
DEFAULT_PRESET = "chapter2"


# The Keras side of the articles (graph_nn/crosscheck/keras_models.py builds and fits them), named here so that the
# command line can list them without importing Keras.
@dataclasses.dataclass(frozen=True)
class Recipe:
    """How an article builds, compiles and fits its Keras model."""

    article: str
    preset: str  # the graph_nn preset with the article's hyper-parameters
    api: str  # "sequential" or "functional"
    labels: str  # "integer" or "onehot"
    loss: str  # what compile() is given
    pipeline: str  # "arrays" (fit(x, y, batch_size=...)) or "tf.data" (fit(dataset, validation_data=...))


RECIPES = {
    "chapter2": Recipe("000", "chapter2", "sequential", "integer", "sparse_categorical_crossentropy", "arrays"),
    "chapter2-onehot": Recipe("002", "chapter2", "sequential", "onehot", "categorical_crossentropy", "arrays"),
    "five-layer": Recipe("001", "five-layer", "sequential", "onehot", "CategoricalCrossentropy", "tf.data"),
    "cnn": Recipe("004", "cnn", "sequential", "integer", "sparse_categorical_crossentropy", "arrays"),
    "cnn-functional": Recipe("004", "cnn", "functional", "integer", "sparse_categorical_crossentropy", "arrays"),
    "cnn-onehot": Recipe("004", "cnn", "sequential", "onehot", "categorical_crossentropy", "arrays"),
}
# A graph model without an article of its own (mlp64, or a preset run with --model) is fitted like article 000.
DEFAULT_RECIPE = "chapter2"


def recipe_name_for(config, name=None):
    """`name` checked, or the recipe of config's preset when config builds that preset's model."""
    if name is None:
        preset_model = PRESETS.get(config.preset, {}).get("model")
        name = config.preset if config.preset in RECIPES and config.model == preset_model else DEFAULT_RECIPE
    if name not in RECIPES:
        raise GraphNNError(f"unknown Keras baseline '{name}'; choose one of {', '.join(RECIPES)}.")
    if RECIPES[name].api == "functional" and config.model != "cnn":
        raise GraphNNError(f"the '{name}' baseline is article 004's functional CNN; it needs --model cnn.")
    return name


def article_preset(model_name):
    """The preset of the article that trains `model_name`: mlp512 -> chapter2, cnn -> cnn, ..."""
    return next(name for name, values in PRESETS.items() if values["model"] == model_name)


def make_config(preset=None, **overrides):
    """The preset's configuration with every non-None override applied on top."""
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise GraphNNError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}.")
    values = dict(PRESETS[name], preset=name)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "epochs" in overrides and "steps" not in overrides and "steps" in values:
        # --epochs on a step-counted preset (tf1) makes it an epoch-counted run with shuffled batches.
        for key in ("steps", "eval_every", "print_every", "batching"):
            values.pop(key, None)
    values.update(overrides)
    config = TrainConfig(**values)
    validate(config)
    return config


def validate(config):
    choices = dict(model=MODELS, init=INITS, optimizer=OPTIMIZERS, semantics=SEMANTICS, batching=BATCHING)
    for field, allowed in choices.items():
        value = getattr(config, field)
        if value not in allowed:
            raise GraphNNError(f"unknown {field} '{value}'; choose one of {', '.join(allowed)}.")
    positive = ["learning_rate", "batch_size", "epochs", "log_every", "histogram_every", "steps_per_run"]
    optional = ("steps", "eval_every", "print_every", "checkpoint_every", "early_stop")
    positive += [field for field in optional if getattr(config, field) is not None]
    for field in positive:
        if not getattr(config, field) > 0:
            raise GraphNNError(f"--{field.replace('_', '-')} must be positive, got {getattr(config, field)}.")
    if any(not step > 0 for step in config.trace_steps):
        raise GraphNNError(f"--trace-steps must be positive step numbers, got {list(config.trace_steps)}.")
    if config.profile_steps and not (
        len(config.profile_steps) == 2 and 0 < config.profile_steps[0] <= config.profile_steps[1]
    ):
        raise GraphNNError(
            f"--profile-steps takes the first and the last step of a range, e.g. 10,20, "
            f"got {','.join(map(str, config.profile_steps))}."
        )
    for name in config.rewrites_off:
        if name not in GRAPPLER_PASSES:
            raise GraphNNError(f"unknown Grappler pass '{name}'; choose from {', '.join(GRAPPLER_PASSES)}.")
    for field in ("momentum", "rho", "beta1", "beta2"):
        if not 0 <= getattr(config, field) < 1:
            raise GraphNNError(f"--{field} must be in [0, 1), got {getattr(config, field)}.")
    for field in ("seed", "validation_split"):
        if getattr(config, field) < 0:
            raise GraphNNError(f"--{field.replace('_', '-')} must be zero or positive, got {getattr(config, field)}.")
    if config.epsilon is not None and not config.epsilon > 0:
        raise GraphNNError(f"--epsilon must be positive, got {config.epsilon}.")
    if config.batching == "sequential" and config.steps is None:
        raise GraphNNError("sequential batching (the TF1 article's slices) needs --steps.")
    validate_idioms(config)


def validate_idioms(config):
    """The TF1 idioms' values, and what they do not combine with."""
    if not 0 <= config.dropout < 1:
        raise GraphNNError(f"--dropout is the rate dropped and must be in [0, 1), got {config.dropout}.")
    if not config.l2 >= 0:
        raise GraphNNError(f"--l2 is the weight decay's λ and must be zero or positive, got {config.l2}.")
    if config.ema is not None and not 0 < config.ema < 1:
        raise GraphNNError(f"--ema is the moving average's decay and must be in (0, 1), got {config.ema}.")
    validate_schedule(config)
    if config.input not in INPUTS:
        raise GraphNNError(f"unknown input '{config.input}'; choose one of {', '.join(INPUTS)}.")
    if config.steps_per_run > 1 and config.input != "feed":
        raise GraphNNError(
            f"--steps-per-run above 1 does not combine with --input {config.input}: the in-graph loop gathers "
            f"its batches itself."
        )
    validate_towers(config)
    for field in ("dropout", "batch_norm", "l2", "ema"):
        if config.steps_per_run > 1 and getattr(config, field):
            raise GraphNNError(
                f"--steps-per-run above 1 does not combine with --{field.replace('_', '-')}: the in-graph loop "
                f"builds the model without the idioms' training inputs."
            )


def validate_towers(config):
    if not config.towers > 0:
        raise GraphNNError(f"--towers must be positive, got {config.towers}.")
    if config.towers > config.batch_size:
        raise GraphNNError(
            f"--towers {config.towers} is more than --batch-size {config.batch_size}, which the towers split: "
            f"each tower needs an example of every full batch."
        )
    if config.towers > 1 and config.steps_per_run > 1:
        raise GraphNNError(
            "--steps-per-run above 1 does not combine with --towers: the in-graph loop builds one copy of the model."
        )


def validate_schedule(config):
    if config.lr_schedule not in LR_SCHEDULES:
        raise GraphNNError(f"unknown lr_schedule '{config.lr_schedule}'; choose one of {', '.join(LR_SCHEDULES)}.")
    if config.steps_per_run > 1 and config.lr_schedule != "constant":
        raise GraphNNError(
            "--steps-per-run above 1 does not combine with --lr-schedule: the in-graph loop reads "
            "the rate once per Session.run."
        )
    if config.lr_schedule in ("exponential", "cosine", "polynomial") and not (config.decay_steps or 0) > 0:
        raise GraphNNError(f"--lr-schedule {config.lr_schedule} needs --decay-steps, a positive number of steps.")
    if config.lr_schedule == "exponential" and not 0 < (config.decay_rate or 0) < 1:
        raise GraphNNError(f"--lr-schedule exponential needs --decay-rate in (0, 1), got {config.decay_rate}.")
    if config.end_lr is not None and not 0 <= config.end_lr < config.learning_rate:
        raise GraphNNError(
            f"--end-lr must be zero or positive and below --lr {config.learning_rate}, got {config.end_lr}."
        )
    if config.lr_schedule == "piecewise":
        b, v = config.boundaries, config.values
        if not b or any(not 0 <= x < y for x, y in zip((0, *b), b)):
            raise GraphNNError(f"--boundaries must be increasing positive steps, got {list(b)}.")
        if len(v) != len(b) + 1 or any(not x > 0 for x in v):
            raise GraphNNError(
                f"--values takes one positive rate more than --boundaries ({len(b) + 1}), got {list(v)}."
            )


def save_config(config, run_dir):
    write_atomically(RunDir(run_dir).config, config.to_json() + "\n")


def load_config(run_dir):
    """The run's TrainConfig, from its config.json, checked as the flags that made it were."""
    path = RunDir(run_dir).config
    if not path.is_file():
        raise GraphNNError(f"{run_dir}: not a graph_nn run directory (no config.json).")
    try:
        config = TrainConfig.from_json(path.read_text())
    except ForeignConfig as e:
        raise GraphNNError(f"{path}: not a graph_nn run configuration ({e}).") from None
    except (OSError, ValueError) as e:
        raise GraphNNError(f"{path}: unreadable run configuration ({e}).") from None
    try:
        validate(config)
    except GraphNNError as e:
        raise GraphNNError(f"{path}: {e}") from None
    return config


def check_weights(run_dir, weights):
    """The run's config.json read and checked, before TensorFlow is imported; --weights ema asks for moving
    averages that only a run trained with --ema has."""
    if load_config(run_dir).ema is None and weights == "ema":
        raise GraphNNError(f"{run_dir} was trained without --ema, so it has no moving averages; use --weights raw.")


def resumed_config(run_dir, given):
    """The configuration in run_dir's config.json, for --resume: a run continues as it was configured, so a
    training flag given ({TrainConfig field: value or None}) with another value than the saved one is a mistake."""
    if not RunDir(run_dir).path.is_dir():
        raise GraphNNError(f"--resume {run_dir}: no such run directory.")
    config = load_config(run_dir)
    for name, value in given.items():
        saved = getattr(config, name)
        if value is not None and value != saved:
            raise GraphNNError(
                f"{run_dir} was trained with --{name.replace('_', '-')} {saved}, not {value}; "
                f"--resume continues a run with the configuration in its config.json."
            )
    return config


# The flags whose name is not their field's (or argparse dest's) name with dashes.
FLAG_NAMES = {"asynchronous": "--async", "rewrites_off": "--rewrite-off"}


def flag_value(value):
    """A flag's value as typed on a command line."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def command_line(values):
    """The run.py flags that give `values` ({TrainConfig field or other flag's dest: value}), for a child process:
    None and False are left out, True is the bare flag, a sequence is comma-separated."""
    argv = []
    for name, value in values.items():
        flag = FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
        if value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv += [flag, flag_value(value)]
    return argv
