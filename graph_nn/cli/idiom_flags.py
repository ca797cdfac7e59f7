"""The flags of the TF1 idioms (graph_nn/graph/model.py): one per TrainConfig field, in a group of their own.

Each flag's dest is its TrainConfig field and its default None, so that config_from_args takes it like any
other training flag and a preset's value stays unless the flag is given.
"""

import argparse


def numbers(parse):
    """An argparse type: comma-separated numbers, e.g. 1000,2000."""

    def values(text):
        try:
            return tuple(parse(item) for item in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {parse.__name__} values, got '{text}'"
            ) from None

    return values


def add_idiom_flags(parser):
    group = parser.add_argument_group("TF1 idioms")
    group.add_argument(
        "--dropout",
        type=float,
        metavar="RATE",
        help="drop this fraction of the hidden layers' outputs (the CNN's dense input) in training steps only, "
        "through a keep_prob placeholder that defaults to 1 (default 0: no dropout)",
    )
    group.add_argument(
        "--batch-norm",
        action="store_true",
        default=None,
        help="batch normalization before each hidden layer's ReLU, Keras's semantics (momentum 0.99, epsilon 1e-3): "
        "the batch's statistics in training steps, the moving ones (updated through UPDATE_OPS) everywhere else",
    )
    group.add_argument(
        "--l2",
        type=float,
        metavar="LAMBDA",
        help="weight decay: λ·Σw² of every kernel added to the loss through the REGULARIZATION_LOSSES collection "
        "(Keras's l2(λ) convention; tf.nn.l2_loss would be Σw²/2) (default 0: none)",
    )
    group.add_argument(
        "--ema",
        type=float,
        metavar="DECAY",
        help="keep an ExponentialMovingAverage of the weights (num_updates = the global step, as cifar10.py), "
        "validated beside them; evaluate, predict and export take it with --weights ema",
    )
    group.add_argument(
        "--lr-schedule",
        metavar="SCHEDULE",
        help="the learning rate as a function of the global step (a resumed run continues its curve): constant "
        "(default), exponential (--decay-steps, --decay-rate, --staircase), piecewise (--boundaries, --values), "
        "cosine or polynomial (--decay-steps, --end-lr); written as the lr train scalar",
    )
    group.add_argument("--decay-steps", type=int, metavar="N", help="the steps of one decay")
    group.add_argument("--decay-rate", type=float, metavar="RATE", help="exponential: the factor per --decay-steps")
    group.add_argument(
        "--boundaries", type=numbers(int), metavar="S1,S2", help="piecewise: steps where the rate changes"
    )
    group.add_argument("--values", type=numbers(float), metavar="LR0,LR1,LR2", help="piecewise: the rates")
    group.add_argument("--end-lr", type=float, metavar="LR", help="cosine, polynomial: the final rate (default 0)")
    group.add_argument(
        "--staircase", action="store_true", default=None, help="exponential: decay at whole --decay-steps only"
    )


def add_weights_flag(parser):
    parser.add_argument(
        "--weights",
        choices=("raw", "ema"),
        default="raw",
        help="the checkpoint's weights (raw, the default) or their moving averages (ema, for a run trained with --ema)",
    )


def check_weights(run_dir, weights):
    """--weights ema on a run without moving averages, refused before TensorFlow is imported."""
    from graph_nn.core.config import load_config
    from graph_nn.core.errors import GraphNNError

    if weights == "ema" and run_dir and load_config(run_dir).ema is None:
        raise GraphNNError(f"{run_dir} was trained without --ema, so it has no moving averages; use --weights raw.")
