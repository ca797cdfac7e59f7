"""The flags, in the groups `--help` shows them in.

A training flag is named after its TrainConfig field (config_from_args reads them back by field name).  Each
group of training flags is a function (parser, listed=False); listed=True is the sweep's: each flag then takes
comma-separated values, every one a run.  A new group is one more function in TRAINING.
"""

import argparse
import dataclasses

from graph_nn.core import config as config_module
from graph_nn.core.config import GRAPPLER_PASSES, MODELS, OPTIMIZERS, PRESETS


def comma_list(parse):
    """An argparse type: comma-separated values, each read by parse."""

    def values(text):
        items = [item.strip() for item in text.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(f"expected comma-separated values, got '{text}'")
        try:
            parsed = [parse(item) for item in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {parse.__name__} values, got '{text}'"
            ) from None
        if len(set(parsed)) < len(parsed):
            raise argparse.ArgumentTypeError(f"'{text}' names a value twice")
        return parsed

    return values


def name_list(text):
    return tuple(name.strip() for name in text.split(","))


def step_list(text):
    try:
        return tuple(int(step) for step in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected step numbers separated by commas, got '{text}'") from None


def training_group(parser, title, listed):
    """The argument group `title`, and its `flag` function: add_argument with the type made a list for a sweep."""
    group = parser.add_argument_group(title)

    def flag(*names, type=str, **kwargs):
        group.add_argument(*names, type=comma_list(type) if listed else type, **kwargs)

    return group, flag


PRESET_HELP = f"one of {', '.join(PRESETS)} (default {config_module.DEFAULT_PRESET}); flags below override it"
MODEL_HELP = f"one of {', '.join(MODELS)}"
OPTIMIZER_HELP = f"one of {', '.join(OPTIMIZERS)}"


def model_flags(parser, listed=False):
    _, flag = training_group(parser, "model", listed)
    flag("--preset", help=PRESET_HELP)
    flag("--model", help=MODEL_HELP)
    flag(
        "--init",
        help="glorot_uniform (Keras's default), random_normal (stddev 1, the TF1 article) or truncated_normal "
        "(stddev 0.1 and biases 0.1, the TensorFlow tutorials')",
    )


def optimizer_flags(parser, listed=False):
    _, flag = training_group(parser, "optimizer", listed)
    flag("--optimizer", help=OPTIMIZER_HELP)
    flag("--semantics", help="tf1 (TF1's optimizers, the default) or keras (Keras 3's update formulas)")
    flag("--lr", "--learning-rate", dest="learning_rate", type=float)
    flag("--momentum", type=float, help="momentum (default 0.9 for --optimizer momentum, 0 for rmsprop)")
    flag("--rho", type=float, help="RMSProp's decay of the mean square")
    flag("--beta1", type=float, help="Adam's first-moment decay")
    flag("--beta2", type=float, help="Adam's second-moment decay")
    flag("--epsilon", type=float, help="RMSProp/Adam epsilon (default: TF1's 1e-10 / 1e-8, Keras's 1e-7)")


def schedule_flags(parser, listed=False):
    _, flag = training_group(parser, "schedule", listed)
    flag("--batch-size", type=int)
    flag("--epochs", type=int)
    flag("--steps", type=int, help="train this many steps instead of whole epochs")
    flag("--batching", help="shuffle (seeded, per epoch) or sequential (the TF1 article's slices)")
    flag("--seed", type=int)
    flag("--eval-every", type=int, help="steps between evaluations (default: each epoch)")
    flag(
        "--validation-split",
        type=int,
        metavar="N",
        help="validate on the last N training examples, train on the others (default 0: validate on the test set)",
    )
    flag(
        "--early-stop",
        type=int,
        metavar="PATIENCE",
        help="end the run after PATIENCE evaluations without a lower validation loss; its result is then its best "
        "checkpoint",
    )


def data_flags(parser, listed=False):
    group = parser.add_argument_group("data")
    add_data_dir(group)
    group.add_argument(
        "--classes",
        metavar="FILE",
        help="the class names, one per line in label order (default: "
        "classes.txt in the data directory, else the digits)",
    )


def logging_flags(parser, listed=False):
    group, flag = training_group(parser, "logging", listed)
    group.add_argument("--logdir", default="logs", help="where run directories go (default logs)")
    flag("--print-every", type=int, help="print a line every N steps instead of a progress bar")
    flag("--log-every", type=int, help="steps between train loss/accuracy summaries (default 50)")
    flag("--histogram-every", type=int, help="steps between histogram summaries (default 200)")
    flag("--checkpoint-every", type=int, help="steps between extra checkpoints")
    group.add_argument(
        "--variable-summaries",
        action="store_true",
        default=None,
        help="each kernel's and bias's mean, stddev, max and min as scalars at the histogram steps "
        "(mnist_with_summaries.py's variable_summaries)",
    )


def instrument_flags(parser, listed=False):
    # Not listed: --trace-steps and --profile-steps are already lists, one value for every run of a sweep.
    group = parser.add_argument_group("instruments")
    group.add_argument(
        "--trace-steps",
        type=step_list,
        help="steps to trace fully, e.g. 100,200 (RunMetadata in TensorBoard's Graph tab, a Chrome trace in traces/)",
    )
    group.add_argument(
        "--profile-steps",
        type=step_list,
        metavar="A,B",
        help="profile steps A to B with tf.profiler (TensorBoard's Profile tab)",
    )
    group.add_argument(
        "--debug-dump",
        action="store_true",
        default=None,
        help="record a Debugger V2 dump of the training graph (TensorBoard's Debugger V2 tab)",
    )
    group.add_argument(
        "--steps-per-run",
        type=int,
        metavar="K",
        help="training steps per Session.run; above 1 a while_loop runs them in the graph (default 1)",
    )
    add_rewrite_off(group)
    group.add_argument("--xla", action="store_true", default=None, help="XLA auto-clustering of the session")


def number_list(parse):
    """An argparse type: comma-separated numbers making one value, e.g. --boundaries 1000,2000."""

    def values(text):
        try:
            return tuple(parse(item) for item in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {parse.__name__} values, got '{text}'"
            ) from None

    return values


def idiom_flags(parser, listed=False):
    """The TF1 idioms (graph_nn/graph/model.py, graph_nn/graph/schedules.py)."""
    group, flag = training_group(parser, "TF1 idioms", listed)
    flag(
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
    flag(
        "--l2",
        type=float,
        metavar="LAMBDA",
        help="weight decay: λ·Σw² of every kernel added to the loss through the REGULARIZATION_LOSSES collection "
        "(Keras's l2(λ) convention; tf.nn.l2_loss would be Σw²/2) (default 0: none)",
    )
    flag(
        "--ema",
        type=float,
        metavar="DECAY",
        help="keep an ExponentialMovingAverage of the weights (num_updates = the global step, as cifar10.py), "
        "validated beside them; evaluate, predict and export take it with --weights ema",
    )
    flag(
        "--lr-schedule",
        metavar="SCHEDULE",
        help="the learning rate as a function of the global step (a resumed run continues its curve): constant "
        "(default), exponential (--decay-steps, --decay-rate, --staircase), piecewise (--boundaries, --values), "
        "cosine or polynomial (--decay-steps, --end-lr); written as the lr train scalar",
    )
    flag("--decay-steps", type=int, metavar="N", help="the steps of one decay")
    flag("--decay-rate", type=float, metavar="RATE", help="exponential: the factor per --decay-steps")
    # Not listed: a boundary list is one value of a run.
    group.add_argument(
        "--boundaries", type=number_list(int), metavar="S1,S2", help="piecewise: steps where the rate changes"
    )
    group.add_argument("--values", type=number_list(float), metavar="LR0,LR1,LR2", help="piecewise: the rates")
    flag("--end-lr", type=float, metavar="LR", help="cosine, polynomial: the final rate (default 0)")
    group.add_argument(
        "--staircase", action="store_true", default=None, help="exponential: decay at whole --decay-steps only"
    )
    flag(
        "--input",
        metavar="PIPELINE",
        help="where a train step's batch comes from, the same batches each way: feed (feed_dict, the default), "
        "dataset (a tf.data pipeline in the graph), queue (TF1's FIFOQueue and QueueRunner), tfrecord (the "
        "dataset pipeline reading the .tfrecords files of convert-to-records in --data-dir)",
    )
    flag(
        "--towers",
        type=int,
        metavar="N",
        help="N copies of the model in one graph, one per GPU or CPU device, each on its part of the batch "
        "(--batch-size stays the whole step's), their gradients averaged and applied once, as TF1's "
        "cifar10_multi_gpu_train.py (default 1)",
    )


# Every training flag, a group a function.
TRAINING = (model_flags, optimizer_flags, schedule_flags, data_flags, logging_flags, instrument_flags, idiom_flags)


def training_flags(parser, listed=False):
    for add_group in TRAINING:
        add_group(parser, listed)


def add_rewrite_off(parser):
    parser.add_argument(
        "--rewrite-off",
        dest="rewrites_off",
        type=name_list,
        metavar="PASS[,PASS]",
        help=f"Grappler passes to switch off: {', '.join(GRAPPLER_PASSES)}",
    )


def add_data_dir(parser):
    parser.add_argument(
        "--data-dir",
        help="a directory of IDX files in MNIST's names (default: the shipped MNIST), or of .tfrecords files for "
        "--input tfrecord",
    )


def add_checkpoint(parser):
    parser.add_argument(
        "--checkpoint",
        choices=("best", "latest"),
        help="which checkpoint: the best (lowest validation loss) or the latest (default: the run's "
        "result, its best with --early-stop, else its latest)",
    )


def add_weights(parser):
    parser.add_argument(
        "--weights",
        choices=("raw", "ema"),
        default="raw",
        help="the checkpoint's weights (raw, the default) or their moving averages (ema, for a run trained with --ema)",
    )


def replication_flags(group):
    group.add_argument(
        "--async",
        dest="asynchronous",
        action="store_true",
        help="async training: each worker applies its own gradients (default: sync)",
    )
    group.add_argument(
        "--backup-workers",
        type=int,
        metavar="K",
        help="sync: aggregate the gradients of all workers but K per update (default 0)",
    )
    group.add_argument(
        "--wait-limit",
        type=int,
        default=120,
        metavar="SECONDS",
        help="seconds a task waits for the others before it gives up (default 120)",
    )


def cluster_task_flags(parser):
    """A cluster task's flags, as TensorFlow's mnist_replica.py names them (or the TF_CONFIG variable)."""
    group = parser.add_argument_group("cluster: this process as one task (or the TF_CONFIG environment variable)")
    group.add_argument("--job-name", metavar="JOB", help="ps, worker (worker 0 is the chief) or evaluator")
    group.add_argument("--task-index", type=int, metavar="N", help="this task's index in its job's host list")
    group.add_argument("--ps-hosts", metavar="HOSTS", help="the parameter servers, HOST:PORT,...")
    group.add_argument("--worker-hosts", metavar="HOSTS", help="the workers, HOST:PORT,...")
    group.add_argument("--run-dir", help="the run directory the cluster's workers share (made if missing)")
    replication_flags(group)


def local_cluster_flags(parser):
    group = parser.add_argument_group("cluster")
    group.add_argument("--workers", type=int, metavar="N", help="how many workers (worker 0 is the chief)")
    group.add_argument("--ps", type=int, metavar="M", help="how many parameter servers (default 1)")
    group.add_argument(
        "--evaluator",
        action="store_true",
        help="one more task, which evaluates each checkpoint of the chief as it appears and writes eval/",
    )
    group.add_argument(
        "--manifest",
        choices=["tfjob"],
        help="print the cluster as a Kubeflow TFJob (kubectl apply -f) instead of starting it here",
    )
    group.add_argument("--image", help="--manifest: the container image, built from this project's Dockerfile")
    group.add_argument("--name", help="--manifest: the TFJob's name and its run directory's (default graph-nn-MODEL)")
    group.add_argument(
        "--volume-claim",
        metavar="CLAIM",
        help="--manifest: the PersistentVolumeClaim every pod mounts at /runs, for the run directory "
        "(ReadWriteMany across nodes; default graph-nn-runs)",
    )
    replication_flags(group)


def train_values(args):
    """{TrainConfig field: the flag's value, None where not given}."""
    return {field.name: getattr(args, field.name, None) for field in dataclasses.fields(config_module.TrainConfig)}


def config_from_args(args):
    """The TrainConfig of the preset with every flag the user gave on top."""
    values = train_values(args)
    return config_module.make_config(values.pop("preset"), **values)
