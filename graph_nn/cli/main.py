"""The command line: `python run.py [train] ...` and its sub-commands.

This module parses and dispatches; what a command prints is written by the module that does the work.
Nothing here imports TensorFlow: a command imports what it needs when it runs, so that `--help` and every
flag mistake are answered at once.  User errors end in one sentence and a non-zero exit.
"""

import argparse
import dataclasses
import os
import signal
import sys

from graph_nn.cli.idiom_flags import add_idiom_flags, add_weights_flag, check_weights
from graph_nn.core import config as config_module
from graph_nn.core.config import CONTROL_FLOWS, RECIPES
from graph_nn.core.errors import GraphNNError
from graph_nn.core.run_dir import RunDir
from graph_nn.distributed import spec

COMMANDS = (
    "train",
    "cluster",
    "sweep",
    "evaluate",
    "summary",
    "predict",
    "compare",
    "parity",
    "inspect",
    "export",
    "bench",
)
KERAS_COMMANDS = ("compare", "parity", "bench")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise GraphNNError(message + ".")


def add_preset_flag(parser, type=str):
    parser.add_argument(
        "--preset",
        type=type,
        help=f"one of {', '.join(config_module.PRESETS)} (default "
        f"{config_module.DEFAULT_PRESET}); flags below override it",
    )


def add_train_flags(parser, listed=False):
    """One flag per TrainConfig field; config_from_args reads them back by field name.  listed=True (sweep):
    each takes comma-separated values, every one a run."""

    def flag(*names, type=str, **kwargs):
        parser.add_argument(*names, type=comma_list(type) if listed else type, **kwargs)

    add_preset_flag(parser, comma_list(str) if listed else str)
    flag("--model", help=f"one of {', '.join(config_module.MODELS)}")
    flag("--init", help="glorot_uniform (Keras's default) or random_normal (stddev 1, the TF1 article)")
    flag("--optimizer", help=f"one of {', '.join(config_module.OPTIMIZERS)}")
    flag("--semantics", help="tf1 (TF1's optimizers, the default) or keras (Keras 3's update formulas)")
    flag("--lr", "--learning-rate", dest="learning_rate", type=float)
    flag("--momentum", type=float, help="momentum (default 0.9 for --optimizer momentum, 0 for rmsprop)")
    flag("--rho", type=float, help="RMSProp's decay of the mean square")
    flag("--beta1", type=float, help="Adam's first-moment decay")
    flag("--beta2", type=float, help="Adam's second-moment decay")
    flag("--epsilon", type=float, help="RMSProp/Adam epsilon (default: TF1's 1e-10 / 1e-8, Keras's 1e-7)")
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
    flag("--print-every", type=int, help="print a line every N steps instead of a progress bar")
    flag("--log-every", type=int, help="steps between train loss/accuracy summaries (default 50)")
    flag("--histogram-every", type=int, help="steps between histogram summaries (default 200)")
    flag("--checkpoint-every", type=int, help="steps between extra checkpoints")
    # Already a list: one value for every run of a sweep.
    parser.add_argument(
        "--trace-steps",
        type=step_list,
        help="steps to trace fully, e.g. 100,200 (RunMetadata in TensorBoard's Graph tab, a Chrome trace in traces/)",
    )
    parser.add_argument(
        "--profile-steps",
        type=step_list,
        metavar="A,B",
        help="profile steps A to B with tf.profiler (TensorBoard's Profile tab)",
    )
    parser.add_argument(
        "--debug-dump",
        action="store_true",
        default=None,
        help="record a Debugger V2 dump of the training graph (TensorBoard's Debugger V2 tab)",
    )
    parser.add_argument(
        "--steps-per-run",
        type=int,
        metavar="K",
        help="training steps per Session.run; above 1 a while_loop runs them in the graph (default 1)",
    )
    add_rewrite_flag(parser)
    parser.add_argument("--xla", action="store_true", default=None, help="XLA auto-clustering of the session")
    add_idiom_flags(parser)
    add_data_flag(parser)
    parser.add_argument(
        "--classes",
        metavar="FILE",
        help="the class names, one per line in label order (default: "
        "classes.txt in the data directory, else the digits)",
    )
    parser.add_argument("--logdir", default="logs", help="where run directories go (default logs)")


def add_rewrite_flag(parser):
    parser.add_argument(
        "--rewrite-off",
        dest="rewrites_off",
        type=name_list,
        metavar="PASS[,PASS]",
        help=f"Grappler passes to switch off: {', '.join(config_module.GRAPPLER_PASSES)}",
    )


def name_list(text):
    return tuple(name.strip() for name in text.split(","))


def step_list(text):
    try:
        return tuple(int(step) for step in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected step numbers separated by commas, got '{text}'") from None


def add_replication_flags(parser):
    parser.add_argument(
        "--async",
        dest="asynchronous",
        action="store_true",
        help="async training: each worker applies its own gradients (default: sync)",
    )
    parser.add_argument(
        "--backup-workers",
        type=int,
        metavar="K",
        help="sync: aggregate the gradients of all workers but K per update (default 0)",
    )
    parser.add_argument(
        "--wait-limit",
        type=int,
        default=120,
        metavar="SECONDS",
        help="seconds a task waits for the others before it gives up (default 120)",
    )


def add_cluster_task_flags(parser):
    """A cluster task's flags, as TensorFlow's mnist_replica.py names them (or the TF_CONFIG variable)."""
    group = parser.add_argument_group("cluster task (or the TF_CONFIG environment variable)")
    group.add_argument("--job-name", metavar="JOB", help="ps or worker (worker 0 is the chief)")
    group.add_argument("--task-index", type=int, metavar="N", help="this task's index in its job's host list")
    group.add_argument("--ps-hosts", metavar="HOSTS", help="the parameter servers, HOST:PORT,...")
    group.add_argument("--worker-hosts", metavar="HOSTS", help="the workers, HOST:PORT,...")
    group.add_argument("--run-dir", help="the run directory the cluster's workers share (made if missing)")
    add_replication_flags(group)


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


def add_checkpoint_flag(parser):
    parser.add_argument(
        "--checkpoint",
        choices=("best", "latest"),
        help="which checkpoint: the best (lowest validation loss) or the latest (default: the run's "
        "result, its best with --early-stop, else its latest)",
    )


def add_data_flag(parser):
    parser.add_argument("--data-dir", help="a directory of IDX files in MNIST's names (default: the shipped MNIST)")


def make_parser():
    parser = ArgumentParser(prog="graph-nn", description="TF1 graph-mode MNIST networks with TensorBoard.")
    every_command = argparse.ArgumentParser(add_help=False)
    every_command.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own log lines (C++ start-up notices, deprecations)"
    )
    commands = parser.add_subparsers(dest="command", parser_class=ArgumentParser)

    def command(name, **kwargs):
        return commands.add_parser(name, parents=[every_command], **kwargs)

    train = command("train", help="train a network (the default command)")
    add_train_flags(train)
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a stopped run from its latest checkpoint, in its directory and with its configuration",
    )
    add_cluster_task_flags(train)

    cluster_command = command(
        "cluster",
        help="train on a cluster of processes on this machine: parameter servers "
        "and workers on 127.0.0.1, as TensorFlow 1 distributed them",
    )
    add_train_flags(cluster_command)
    cluster_command.add_argument("--workers", type=int, metavar="N", help="how many workers (worker 0 is the chief)")
    cluster_command.add_argument("--ps", type=int, metavar="M", help="how many parameter servers (default 1)")
    add_replication_flags(cluster_command)
    cluster_command.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a stopped cluster run from the chief's latest checkpoint"
    )

    sweep = command(
        "sweep",
        help="train every combination of comma-separated flag values, each an ordinary run; "
        "print a table sorted by validation accuracy",
    )
    add_train_flags(sweep, listed=True)
    sweep.add_argument(
        "--repeats",
        type=int,
        help="runs of each combination, seeds --seed, --seed + 1, ... (default 1); the table shows means and spreads",
    )
    sweep.add_argument("--jobs", type=int, default=1, help="runs trained at once, each in its own process (default 1)")
    sweep.add_argument(
        "--timeout",
        type=float,
        default=24 * 3600,
        help="seconds a run may train before it is stopped at a checkpoint (default one day)",
    )
    sweep.add_argument(
        "--resume",
        metavar="SWEEP_DIR",
        help="continue a sweep: finished runs are kept, stopped ones resumed, the others trained",
    )

    evaluate = command("evaluate", help="restore a run's final checkpoint and test it")
    evaluate.add_argument("--run", required=True, help="a run directory under logs/")
    add_checkpoint_flag(evaluate)
    add_weights_flag(evaluate)
    add_data_flag(evaluate)

    summary = command("summary", help="print a model's layers, output shapes and parameter counts")
    summary.add_argument("--model", required=True, help=f"one of {', '.join(config_module.MODELS)}")

    predict = command("predict", help="predict the digit in image files (PNG, JPEG, ...)")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="one handwritten digit per file, any size")
    predict.add_argument("--run", help="a run directory (default: the newest run under --logdir)")
    predict.add_argument("--logdir", default="logs", help="where to look for the newest run (default logs)")
    add_checkpoint_flag(predict)
    add_weights_flag(predict)

    compare = command("compare", help="train the graph model and its Keras twin, print both results")
    add_train_flags(compare)
    compare.add_argument(
        "--baseline",
        help=f"the Keras recipe: one of {', '.join(RECIPES)} "
        "(default: the preset's article; without --preset, its preset)",
    )
    compare.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="train both this many times, seeds --seed, --seed + 1, ...; print means (default 1)",
    )

    parity = command("parity", help="check the graph models against Keras: same weights, same logits")
    parity.add_argument("--model", choices=config_module.MODELS, help="one model (default: all four)")
    parity.add_argument("--images", type=int, default=10000, help="test images compared (default 10000)")
    parity.add_argument(
        "--keras-steps",
        type=int,
        default=200,
        help="RMSprop steps Keras trains before its weights are copied (default 200)",
    )
    parity.add_argument("--functional", action="store_true", help="use article 004's functional CNN")
    parity.add_argument(
        "--training",
        action="store_true",
        help="instead: per-step training losses over --steps steps for SGD, momentum, RMSprop and Adam",
    )
    parity.add_argument("--steps", type=int, default=100, help="training-parity steps (default 100)")
    add_data_flag(parity)

    inspect = command(
        "inspect", help="print what TensorFlow built for a model: variables, slots, ops, gradients, FLOPs"
    )
    add_preset_flag(inspect)
    inspect.add_argument("--model", help=f"one of {', '.join(config_module.MODELS)}")
    inspect.add_argument("--optimizer", help=f"one of {', '.join(config_module.OPTIMIZERS)}")
    inspect.add_argument("--semantics", help="tf1 (TF1's fused optimizer ops) or keras (Keras 3's formulas as ops)")
    inspect.add_argument("--batch-size", type=int, help="the static batch size of the FLOP count and the trace")
    inspect.add_argument("--pbtxt", help="also write the GraphDef as text to this file")
    inspect.add_argument(
        "--trace",
        action="store_true",
        help="run one traced training step on MNIST and print its ten most expensive ops",
    )
    inspect.add_argument("--run", help="instead: a finished run's logged graph, traced steps and checkpoint")
    instead = inspect.add_mutually_exclusive_group()
    instead.add_argument(
        "--grappler",
        action="store_true",
        help="instead: one training step as written and as executed, and Grappler's passes over it",
    )
    instead.add_argument(
        "--control-flow",
        choices=CONTROL_FLOWS,
        help="instead: the --steps-per-run while_loop with TF1's (v1) or TF2's (v2) control flow",
    )
    instead.add_argument(
        "--xla",
        action="store_true",
        default=None,
        help="instead: XLA's clusters in a training step, and what XLA does to its time and numbers",
    )
    instead.add_argument(
        "--cluster",
        action="store_true",
        help="instead: the graph on 1 ps + 2 workers: placement, one sync step's partitions and "
        "the bytes between tasks",
    )
    inspect.add_argument("--steps-per-run", type=int, metavar="K", help="the steps of the while_loop's run")
    add_rewrite_flag(inspect)
    inspect.add_argument(
        "--logdir",
        default="logs",
        help="where --control-flow and --xla write their graphs for TensorBoard (default logs, under inspect/)",
    )
    add_data_flag(inspect)

    export = command("export", help="freeze a run's final checkpoint into a GraphDef and a SavedModel")
    export.add_argument("--run", required=True, help="a run directory under logs/")
    add_checkpoint_flag(export)
    add_weights_flag(export)
    add_data_flag(export)

    bench = command("bench", help="training and inference throughput: graph mode vs Keras vs the hardware")
    bench.add_argument(
        "--models",
        help=f"comma-separated, from {','.join(config_module.MODELS)} (default mlp512,cnn; "
        f"mlp512 with --cluster), each with its article's preset",
    )
    bench.add_argument("--steps", type=int, help="timed steps per repeat (default 200; 1000 with --cluster)")
    bench.add_argument("--repeats", type=int, help="repeats; the median is reported (default 5; 1 with --cluster)")
    bench.add_argument("--json", default="bench.json", help="where to write the figures (default bench.json)")
    bench.add_argument(
        "--cluster",
        action="store_true",
        help="instead: one process vs 1 ps + 1 and 2 workers on 127.0.0.1 (steps/s, examples/s, bytes per step)",
    )
    return parser


def parse_args(argv):
    argv = list(argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "train")
    return make_parser().parse_args(argv)


def config_from_args(args):
    """The TrainConfig of the preset with every flag the user gave on top (flags are named after its fields)."""
    fields = (field.name for field in dataclasses.fields(config_module.TrainConfig) if field.name != "preset")
    return config_module.make_config(args.preset, **{name: getattr(args, name, None) for name in fields})


def refuse_changed_flags(run_dir, config, args):
    """--resume continues a run as it was configured: a flag given with another value is a mistake."""
    for name in (field.name for field in dataclasses.fields(config)):
        given, saved = getattr(args, name, None), getattr(config, name)
        if given is not None and given != saved:
            raise GraphNNError(
                f"{run_dir} was trained with --{name.replace('_', '-')} {saved}, not {given}; "
                f"--resume continues a run with the configuration in its config.json."
            )


# ---- the commands: check what can be checked without TensorFlow, then import and run ------------------


def command_train(args):
    from graph_nn.cli.startup import enable_xla_on_cpu
    from graph_nn.data.batches import schedule_for
    from graph_nn.data.dataset import load_dataset  # numpy, not TensorFlow

    task = cluster_task(args)
    if task:
        return command_task(args, task)
    cluster_flags = {"--run-dir": args.run_dir, "--async": args.asynchronous, "--backup-workers": args.backup_workers}
    for flag, value in cluster_flags.items():
        if value:
            raise GraphNNError(
                f"{flag} is for a cluster's tasks (--job-name ... or TF_CONFIG, or python run.py cluster)."
            )
    if args.resume:
        if not os.path.isdir(args.resume):
            raise GraphNNError(f"--resume {args.resume}: no such run directory.")
        if RunDir(args.resume).cluster.exists():
            raise GraphNNError(
                f"{args.resume} was trained by a cluster; continue it with: python run.py cluster "
                f"--resume {args.resume}"
            )
        config = config_module.load_config(args.resume)
        config_module.validate(config)
        refuse_changed_flags(args.resume, config, args)
        if args.classes:
            raise GraphNNError(
                f"--resume {args.resume} keeps the class names the run was trained with; give no --classes."
            )
        dataset = load_dataset(args.data_dir)
        if config.xla:
            enable_xla_on_cpu()
        from graph_nn.training.runs import resume

        resume(args.resume, dataset)
        return 0
    config = config_from_args(args)
    dataset = load_dataset(args.data_dir, args.classes)
    schedule_for(config, dataset)  # the data's own checks, before TensorFlow is imported
    if config.xla:
        enable_xla_on_cpu()
    from graph_nn.training.runs import train

    train(config, dataset, logdir=args.logdir)
    return 0


def saved_config(run_dir, args):
    """The configuration in run_dir's config.json, with any training flag given checked against it."""
    config = config_module.load_config(run_dir)
    config_module.validate(config)
    refuse_changed_flags(run_dir, config, args)
    return config


# ---- a cluster: its tasks, and the launcher that starts them all on this machine -------------------------


def cluster_task(args):
    """This process's task when the cluster is given by flags or by TF_CONFIG, else None."""
    flags = (args.job_name, args.task_index, args.ps_hosts, args.worker_hosts)
    tf_config = os.environ.get("TF_CONFIG", "").strip()
    if any(flag is not None for flag in flags):
        if tf_config:
            raise GraphNNError("the cluster is given both by flags and by TF_CONFIG; give it one way.")
        return spec.task_from_flags(*flags)
    return spec.task_from_tf_config(tf_config) if tf_config else None


def replication_from_args(args, num_workers):
    backups = args.backup_workers or 0
    if args.asynchronous and backups:
        raise GraphNNError("--backup-workers is for sync training; async training never waits for a worker.")
    if not 0 <= backups < num_workers:
        raise GraphNNError(
            f"--backup-workers must be from 0 to {num_workers - 1} with {num_workers} workers, got {backups}."
        )
    if args.wait_limit <= 0:
        raise GraphNNError(f"--wait-limit must be positive, got {args.wait_limit}.")
    return spec.Replication("async" if args.asynchronous else "sync", backups)


# What a single process's loop does that a cluster's workers do not: the flags, and their values when off.
SINGLE_PROCESS_FLAGS = {
    "trace_steps": (),
    "profile_steps": (),
    "debug_dump": False,
    "steps_per_run": 1,
    "rewrites_off": (),
    "xla": False,
    "early_stop": None,
    # A sync worker's train op is its gradients' enqueue, applied by the chief's queue runner: the averages would
    # precede the update, and UPDATE_OPS would run there without a batch.
    "ema": None,
    "batch_norm": False,
}


def check_cluster_config(config, dataset):
    from graph_nn.data.batches import schedule_for

    schedule_for(config, dataset, task=0)  # refuses sequential batches, and batches or splits larger than the data
    for field, off in SINGLE_PROCESS_FLAGS.items():
        if (getattr(config, field) or off) != off:
            raise GraphNNError(
                f"--{field.replace('_', '-')} is for single-process runs, not a cluster's workers "
                f"(python run.py inspect --cluster shows a distributed step)."
            )


def command_task(args, task):
    from graph_nn.data.dataset import load_dataset

    replication = replication_from_args(args, task.num_workers)
    if task.job == "ps":
        spec.check_port_free(task)
        from graph_nn.distributed.tasks import run_task

        run_task(task, wait_limit=args.wait_limit)
    run_dir = args.resume or args.run_dir
    if run_dir is None:
        raise GraphNNError(
            "a worker needs --run-dir DIR: the run directory its cluster's workers share "
            "(python run.py cluster picks one)."
        )
    resuming = args.resume or RunDir(run_dir).config.exists()
    config = saved_config(run_dir, args) if resuming else config_from_args(args)
    dataset = load_dataset(args.data_dir, args.classes)
    check_cluster_config(config, dataset)
    spec.check_port_free(task)
    try:
        RunDir(run_dir).path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GraphNNError(f"--run-dir {run_dir}: cannot make the directory ({e.strerror or e}).") from None
    from graph_nn.distributed.tasks import run_task

    run_task(task, config, dataset, run_dir, replication, args.wait_limit)


def command_cluster(args):
    from graph_nn.core.config import save_config
    from graph_nn.core.run_dir import new_run_dir
    from graph_nn.data.dataset import load_dataset

    if args.resume:
        if not os.path.isdir(args.resume):
            raise GraphNNError(f"--resume {args.resume}: no such run directory.")
        config = saved_config(args.resume, args)
        num_ps, num_workers, replication = spec.load_cluster(args.resume)
        given = {
            "--workers": (args.workers, num_workers),
            "--ps": (args.ps, num_ps),
            "--backup-workers": (args.backup_workers, replication.backup_workers),
        }
        for flag, (value, saved) in given.items():
            if value is not None and value != saved:
                raise GraphNNError(
                    f"{args.resume} was trained with {flag} {saved}, not {value}; a resumed cluster "
                    f"is the same cluster."
                )
        if args.asynchronous and replication.mode != "async":
            raise GraphNNError(f"{args.resume} was trained in sync mode; a resumed cluster trains as it did.")
    else:
        if args.workers is None:
            raise GraphNNError("python run.py cluster needs --workers N.")
        num_ps, num_workers = args.ps or 1, args.workers
        for flag, value in (("--workers", num_workers), ("--ps", num_ps)):
            if value <= 0:
                raise GraphNNError(f"{flag} must be positive, got {value}.")
        replication = replication_from_args(args, num_workers)
        config = config_from_args(args)
    dataset = load_dataset(args.data_dir, args.classes)
    check_cluster_config(config, dataset)
    run_dir = args.resume
    if run_dir is None:
        run_dir = new_run_dir(args.logdir, config.model)
        save_config(config, run_dir)
    from graph_nn.distributed import launcher

    shared = ["--wait-limit", str(args.wait_limit)] + (["--verbose"] if args.verbose else [])
    worker_args = ["--run-dir", str(run_dir), *shared]
    worker_args += ["--async"] if replication.mode == "async" else ["--backup-workers", str(replication.backup_workers)]
    worker_args += ["--data-dir", args.data_dir] if args.data_dir else []
    worker_args += ["--classes", args.classes] if args.classes else []
    return launcher.run_cluster(launcher.local_jobs(num_ps, num_workers), worker_args, shared, run_dir)


def command_sweep(args):
    for name in ("repeats", "jobs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise GraphNNError(f"--{name} must be positive, got {getattr(args, name)}.")
    if not args.timeout > 0:
        raise GraphNNError(f"--timeout must be positive, got {args.timeout}.")
    from graph_nn.experiments import sweep

    fields = [field.name for field in dataclasses.fields(config_module.TrainConfig)]
    # Every flag a list of values (--trace-steps, already a list, is one value).
    values = {
        name: value if isinstance(value, list) else [value]
        for name in fields
        if (value := getattr(args, name, None)) is not None
    }
    if args.resume:
        given = [name for name in [*values, "data_dir", "classes", "repeats"] if getattr(args, name) is not None]
        if given:
            raise GraphNNError(
                f"--resume continues the sweep planned in its {sweep.PLAN}; give only --jobs and "
                f"--timeout with it, not --{given[0].replace('_', '-')}."
            )
        sweep_dir = args.resume
    else:
        sweep_dir = sweep.create(args.logdir, values, args.repeats or 1, args.data_dir, args.classes)
    return sweep.run(sweep_dir, args.jobs, args.timeout)


def command_evaluate(args):
    from graph_nn.data.dataset import load_dataset
    from graph_nn.reports.evaluate import report_run

    check_weights(args.run, args.weights)
    report_run(args.run, load_dataset(args.data_dir), which=args.checkpoint, weights=args.weights)
    print(f"Pictures saved in {args.run}")
    return 0


def command_summary(args):
    config = config_module.make_config(model=args.model)
    from graph_nn.graph.layer_table import format_summary
    from graph_nn.graph.model import build_inference_graph

    print(format_summary(build_inference_graph(config), args.model))
    return 0


def command_predict(args):
    from graph_nn.core.run_dir import newest_run
    from graph_nn.reports.predict import format_prediction, predict_files

    run_dir = args.run or newest_run(args.logdir)
    check_weights(run_dir, args.weights)
    predictions = predict_files(run_dir, args.images, args.checkpoint, args.weights)
    for prediction in predictions:
        if prediction.error:
            print(f"graph-nn: error: {prediction.error}", file=sys.stderr)
        else:
            print(format_prediction(prediction))
    return GraphNNError.exit_code if any(p.error for p in predictions) else 0


def command_compare(args):
    if args.preset is None and args.baseline in RECIPES:
        args.preset = RECIPES[args.baseline].preset  # `compare --baseline cnn-onehot` trains article 004's set-up
    config = config_from_args(args)
    if config.xla:
        from graph_nn.cli.startup import enable_xla_on_cpu

        enable_xla_on_cpu()
    from graph_nn.crosscheck.compare import compare, format_table
    from graph_nn.data.dataset import load_dataset

    comparison = compare(
        config, load_dataset(args.data_dir, args.classes), args.baseline, logdir=args.logdir, repeats=args.repeats
    )
    print()
    print(format_table(comparison))
    print(f"Graph run directories: {', '.join(map(str, comparison.run_dirs))}")
    return 0


def command_parity(args):
    if args.images < 1 or args.steps < 1 or args.keras_steps < 0:
        raise GraphNNError("--images and --steps must be positive, --keras-steps not negative.")
    from graph_nn.crosscheck import parity
    from graph_nn.data.dataset import load_dataset

    dataset = load_dataset(args.data_dir)
    if args.training:
        holds = parity.print_training_checks(args.model or "mlp64", dataset, args.steps)
    else:
        models = [args.model] if args.model else config_module.MODELS
        api = "functional" if args.functional else "sequential"
        holds = parity.print_forward_checks(models, dataset, args.images, args.keras_steps, api)
    return 0 if holds else 1


def command_inspect(args):
    config = config_from_args(args)
    if args.cluster:
        from graph_nn.data.dataset import load_dataset
        from graph_nn.internals.inspect_cluster import report

        report(config, load_dataset(args.data_dir), sys.stdout)
        return 0
    if args.run:
        from graph_nn.internals.inspect_graph import run_report

        run_report(args.run, sys.stdout)
        return 0
    dataset = None
    if args.trace or args.grappler or args.control_flow or args.xla:
        from graph_nn.data.dataset import load_dataset

        dataset = load_dataset(args.data_dir)
    if args.xla:
        from graph_nn.cli.startup import enable_xla_on_cpu

        enable_xla_on_cpu(clustering_debug=True)
        from graph_nn.internals import xla

        xla.report(config, dataset, args.logdir, sys.stdout)
        return 0
    if args.grappler:
        from graph_nn.internals import grappler

        grappler.report(config, dataset, sys.stdout)
        return 0
    if args.control_flow:
        from graph_nn.internals import control_flow

        control_flow.report(config, dataset, args.control_flow, args.logdir, sys.stdout)
        return 0
    from graph_nn.internals.inspect_graph import report

    report(config, sys.stdout, pbtxt=args.pbtxt, dataset=dataset)
    return 0


def command_export(args):
    from graph_nn.data.dataset import load_dataset
    from graph_nn.reports.export import check_export, export_run, format_check, format_export

    check_weights(args.run, args.weights)
    print(format_export(export_run(args.run, args.checkpoint, args.weights)))
    print(format_check(check_export(args.run, load_dataset(args.data_dir), args.checkpoint, args.weights)))
    return 0


def command_bench(args):
    defaults = ("mlp512", 1000, 1) if args.cluster else ("mlp512,cnn", 200, 5)
    args.models, args.steps, args.repeats = (
        given or default for given, default in zip((args.models, args.steps, args.repeats), defaults)
    )
    models = tuple(args.models.split(","))
    unknown = set(models) - set(config_module.MODELS)
    if unknown:
        raise GraphNNError(f"bench measures {', '.join(config_module.MODELS)}, not {', '.join(sorted(unknown))}.")
    if args.steps <= 0 or args.repeats <= 0:
        raise GraphNNError("--steps and --repeats must be positive.")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise GraphNNError(f"--json {args.json}: its directory does not exist.")
    from graph_nn.data.dataset import load_dataset

    if args.cluster:
        from graph_nn.experiments import bench_cluster as bench

        report = bench.run_bench(load_dataset(), args.steps, args.repeats, models)
    else:
        from graph_nn.cli.startup import enable_xla_on_cpu

        enable_xla_on_cpu()  # for the XLA contender; sessions that do not ask for XLA are not affected
        from graph_nn.experiments import bench

        report = bench.run_bench(load_dataset(), bench.Settings(steps=args.steps, repeats=args.repeats), models)
    print(bench.format_report(report))
    try:
        bench.write_json(report, args.json)
    except OSError as e:
        raise GraphNNError(
            f"--json {args.json}: cannot write the figures ({e.strerror or e}); the table above has them."
        ) from None
    print(f"Figures written to {args.json}")
    return 0


def quiet_tensorflow():
    """TensorFlow's log lines off the terminal; called before TensorFlow is imported."""
    import logging

    from graph_nn.cli.startup import filter_native_stderr

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # compat.v1 APIs log deprecation notices that say nothing to a user of this tool.  The logger is
    # tf.get_logger()'s, set without importing TensorFlow.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    filter_native_stderr()


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        if not args.verbose:
            quiet_tensorflow()
        commands = {
            "train": command_train,
            "cluster": command_cluster,
            "sweep": command_sweep,
            "evaluate": command_evaluate,
            "summary": command_summary,
            "predict": command_predict,
            "compare": command_compare,
            "parity": command_parity,
            "inspect": command_inspect,
            "export": command_export,
            "bench": command_bench,
        }
        if args.command in KERAS_COMMANDS:
            return commands[args.command](args)
        from graph_nn.cli.startup import without_keras

        with without_keras():
            return commands[args.command](args)
    except GraphNNError as e:
        print(f"graph-nn: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:  # Ctrl-C before training started: nothing to save yet
        print("\ngraph-nn: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output has gone (python run.py inspect | head): end quietly with the status of a
        # Unix tool stopped by SIGPIPE. A training run keeps its last checkpoint, so --resume goes on from it.
        # stdout now leads nowhere, so that flushing it on the way out cannot fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
