"""The commands: each a name, its help, its flags and the function that runs it, in COMMANDS, from which
main.py makes the parser, the help and the dispatch.

A command checks what can be checked without TensorFlow, then imports what it needs and runs: the imports
of modules that load TensorFlow stay inside the functions, so that `--help` and every flag mistake are
answered at once.  The rules of a domain (what a cluster refuses, what a resume may change) are its module's.
"""

import dataclasses
import importlib.util
import json
import os
import sys
from collections.abc import Callable

from graph_nn.cli import flags
from graph_nn.cli.flags import config_from_args, train_values
from graph_nn.cli.startup import enable_xla_on_cpu
from graph_nn.core import config as config_module
from graph_nn.core.config import CONTROL_FLOWS, MODELS, RECIPES
from graph_nn.core.errors import GraphNNError
from graph_nn.core.run_dir import RunDir, check_not_held, exclusive, new_run_dir, newest_run, write_atomically
from graph_nn.data.batches import schedule_for
from graph_nn.data.dataset import load_dataset, record_files  # numpy, not TensorFlow
from graph_nn.data.digit_images import prepare_files
from graph_nn.distributed import launcher, spec
from graph_nn.experiments import sweep


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    help: str
    flags: tuple  # functions that add the command's flags (or a group of them) to its parser
    run: Callable  # run(args) -> exit status
    keras: bool | Callable = False  # whether it may import Keras (or a function of the flags that says it)


def show(report):
    """Prints a report line by line, each as soon as it is computed."""
    for line in report.lines():
        print(line, flush=True)


# ---- train: one process, or a task of a cluster --------------------------------------------------------------


def resume_flag(parser):
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a stopped run from its latest checkpoint, in its directory and with its configuration",
    )


def resumed_config(run_dir, args):
    """The configuration --resume continues, every training flag given checked against it."""
    return config_module.resumed_config(run_dir, train_values(args))


def command_train(args):
    task = spec.this_task(args.job_name, args.task_index, args.ps_hosts, args.worker_hosts, os.environ.get("TF_CONFIG"))
    if task:
        return command_task(args, task)
    cluster_flags = {"--run-dir": args.run_dir, "--async": args.asynchronous, "--backup-workers": args.backup_workers}
    for flag, value in cluster_flags.items():
        if value:
            raise GraphNNError(
                f"{flag} is for a cluster's tasks (--job-name ... or TF_CONFIG, or python run.py cluster)."
            )
    if args.resume:
        if RunDir(args.resume).cluster.exists():
            raise GraphNNError(
                f"{args.resume} was trained by a cluster; continue it with: python run.py cluster "
                f"--resume {args.resume}"
            )
        config = resumed_config(args.resume, args)
        if args.classes:
            raise GraphNNError(
                f"--resume {args.resume} keeps the class names the run was trained with; give no --classes."
            )
        dataset = training_data(config, args.data_dir)
    else:
        config = config_from_args(args)
        dataset = training_data(config, args.data_dir, args.classes)
        schedule_for(config, dataset)  # the data's own checks
    if config.xla:
        enable_xla_on_cpu()
    if not args.resume:
        from graph_nn.training import runs

        runs.train(config, dataset, logdir=args.logdir)
        return 0
    with exclusive(args.resume):  # a resume typed twice is refused before TensorFlow is imported
        from graph_nn.training import runs

        runs.resume(args.resume, dataset)
    return 0


def training_data(config, data_dir, classes=None):
    """The data a run trains on: the IDX files, or with --input tfrecord the .tfrecords files, in data_dir."""
    if config.input != "tfrecord":
        return load_dataset(data_dir, classes)
    if data_dir is None:
        raise GraphNNError(
            "--input tfrecord reads the files of python run.py convert-to-records OUT_DIR; give --data-dir OUT_DIR."
        )
    record_files(data_dir)  # before TensorFlow is imported
    from graph_nn.graph.tfrecords import load_records

    return load_records(data_dir, classes)


def command_task(args, task):
    replication = spec.replication_for(task.num_workers, args.asynchronous, args.backup_workers, args.wait_limit)
    if task.job == "ps":
        spec.check_port_free(task)
        from graph_nn.distributed.tasks import run_task

        run_task(task, wait_limit=args.wait_limit)
    run_dir = args.resume or args.run_dir
    if run_dir is None:
        raise GraphNNError(
            f"{'an evaluator' if task.is_evaluator else 'a worker'} needs --run-dir DIR: the run directory its "
            "cluster's workers share (python run.py cluster picks one)."
        )
    if task.is_evaluator:  # it trains nothing: the run's config.json, once the chief has written it, says what
        from graph_nn.distributed.tasks import run_task

        run_task(task, dataset=load_dataset(args.data_dir, args.classes), run_dir=run_dir, wait_limit=args.wait_limit)
    resuming = args.resume or RunDir(run_dir).config.exists()
    config = resumed_config(run_dir, args) if resuming else config_from_args(args)
    dataset = load_dataset(args.data_dir, args.classes)
    spec.check_cluster_config(config, dataset)
    spec.check_port_free(task)
    try:
        RunDir(run_dir).path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GraphNNError(f"--run-dir {run_dir}: cannot make the directory ({e.strerror or e}).") from None
    if task.is_chief:
        check_not_held(run_dir)  # a second chief, before its server starts; the chief takes the lock itself
    from graph_nn.distributed.tasks import run_task

    run_task(task, config, dataset, run_dir, replication, args.wait_limit)


# ---- cluster: every task of a cluster on this machine ----------------------------------------------------------


def cluster_resume_flag(parser):
    parser.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a stopped cluster run from the chief's latest checkpoint"
    )


def command_cluster(args):
    if args.manifest:
        check_manifest_flags(args)
    elif args.image or args.name or args.volume_claim:
        raise GraphNNError("--image, --name and --volume-claim are for --manifest tfjob.")
    if args.resume:
        config = resumed_config(args.resume, args)
        check_not_held(args.resume)  # before any task starts: the chief it starts takes the lock
        num_ps, num_workers, replication = spec.resumed_cluster(
            args.resume, args.workers, args.ps, args.backup_workers, args.asynchronous
        )
    else:
        num_ps, num_workers = spec.cluster_size(args.workers, args.ps)
        replication = spec.replication_for(num_workers, args.asynchronous, args.backup_workers, args.wait_limit)
        config = config_from_args(args)
    dataset = load_dataset(args.data_dir, args.classes)
    spec.check_cluster_config(config, dataset)
    shared = dict(wait_limit=args.wait_limit, verbose=args.verbose)
    replicated = (
        dict(asynchronous=True) if replication.mode == "async" else dict(backup_workers=replication.backup_workers)
    )
    if args.manifest:
        return print_manifest(args, config, num_ps, num_workers, {**shared, **replicated})
    run_dir = args.resume
    if run_dir is None:
        run_dir = new_run_dir(args.logdir, config.model)
        config_module.save_config(config, run_dir)
    worker_args = config_module.command_line(
        dict(run_dir=run_dir, **shared, **replicated, data_dir=args.data_dir, classes=args.classes)
    )
    return launcher.run_cluster(
        launcher.local_jobs(num_ps, num_workers),
        worker_args,
        config_module.command_line(shared),
        run_dir,
        evaluator=args.evaluator,
    )


def check_manifest_flags(args):
    if args.image is None:
        raise GraphNNError("--manifest tfjob needs --image IMAGE, an image built from this project's Dockerfile.")
    for flag, value in {"--resume": args.resume, "--data-dir": args.data_dir}.items():
        if value:
            raise GraphNNError(f"{flag} names a path on this machine; a TFJob's pods have their own (give no {flag}).")


def print_manifest(args, config, num_ps, num_workers, task_values):
    """The cluster as a TFJob on stdout (graph_nn/distributed/manifest.py): its pods train with the flags given."""
    from graph_nn.distributed.manifest import manifest_text, tfjob_manifest

    given = {name: value for name, value in train_values(args).items() if value is not None}
    manifest = tfjob_manifest(
        args.name or f"graph-nn-{config.model}",
        args.image,
        args.volume_claim or "graph-nn-runs",
        num_ps,
        num_workers,
        args.evaluator,
        config_module.command_line(dict(given, classes=args.classes)),
        config_module.command_line(task_values),
    )
    print(manifest_text(manifest), end="")
    return 0


# ---- the other commands ----------------------------------------------------------------------------------------


def sweep_flags(parser):
    parser.add_argument(
        "--repeats",
        type=int,
        help="runs of each combination, seeds --seed, --seed + 1, ... (default 1); the table shows means and spreads",
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once, each in its own process (default 1)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=24 * 3600,
        help="seconds a run may train before it is stopped at a checkpoint (default one day)",
    )
    parser.add_argument(
        "--resume",
        metavar="SWEEP_DIR",
        help="continue a sweep: finished runs are kept, stopped ones resumed, the others trained",
    )


def listed_training_flags(parser):
    flags.training_flags(parser, listed=True)


def command_sweep(args):
    for name in ("repeats", "jobs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise GraphNNError(f"--{name} must be positive, got {getattr(args, name)}.")
    if not args.timeout > 0:
        raise GraphNNError(f"--timeout must be positive, got {args.timeout}.")
    # Every flag a list of values (--trace-steps, already a list, is one value).
    values = {
        name: value if isinstance(value, list) else [value]
        for name, value in train_values(args).items()
        if value is not None
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


def run_flags(parser):
    parser.add_argument("--run", required=True, help="a run directory under logs/")
    flags.add_checkpoint(parser)
    flags.add_weights(parser)
    flags.add_data_dir(parser)


def command_evaluate(args):
    config_module.check_weights(args.run, args.weights)
    dataset = load_dataset(args.data_dir)
    with exclusive(written_run(args.run), "evaluated"):  # its pictures and TensorBoard files
        from graph_nn.reports.evaluate import evaluation_report

        show(evaluation_report(args.run, dataset, which=args.checkpoint, weights=args.weights))
    print(f"Pictures saved in {args.run}")
    return 0


def written_run(run_dir):
    """run_dir, checked to be a run before a command that writes into it takes its lock."""
    config_module.load_config(run_dir)
    return run_dir


def summary_flags(parser):
    parser.add_argument("--model", required=True, help=flags.MODEL_HELP)


def command_summary(args):
    config = config_module.make_config(model=args.model)
    from graph_nn.graph.layer_table import format_summary
    from graph_nn.graph.model import build_inference_graph

    print(format_summary(build_inference_graph(config), args.model))
    return 0


def predict_flags(parser):
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="one handwritten digit per file, any size")
    parser.add_argument("--run", help="a run directory (default: the newest run under --logdir)")
    parser.add_argument("--logdir", default="logs", help="where to look for the newest run (default logs)")
    flags.add_checkpoint(parser)
    flags.add_weights(parser)


def command_predict(args):
    run_dir = args.run or newest_run(args.logdir)
    config_module.check_weights(run_dir, args.weights)
    prepared = prepare_files(args.images)  # before TensorFlow is imported, which no unreadable file needs
    if all(error for _, _, error in prepared):
        for _, _, error in prepared:
            print(f"graph-nn: error: {error}", file=sys.stderr)
        return GraphNNError.exit_code
    from graph_nn.reports.predict import predict_prepared

    predictions = predict_prepared(run_dir, prepared, args.checkpoint, args.weights)
    for prediction in predictions:
        if prediction.error:
            print(f"graph-nn: error: {prediction.error}", file=sys.stderr)
        else:
            print(prediction)
    return GraphNNError.exit_code if any(p.error for p in predictions) else 0


def compare_flags(parser):
    parser.add_argument(
        "--baseline",
        help=f"the Keras recipe: one of {', '.join(RECIPES)} "
        "(default: the preset's article; without --preset, its preset)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="train both this many times, seeds --seed, --seed + 1, ...; print means (default 1)",
    )


def command_compare(args):
    if args.preset is None and args.baseline in RECIPES:
        args.preset = RECIPES[args.baseline].preset  # `compare --baseline cnn-onehot` trains article 004's set-up
    config = config_from_args(args)
    if config.xla:
        enable_xla_on_cpu()
    from graph_nn.crosscheck.compare import compare

    comparison = compare(
        config, load_dataset(args.data_dir, args.classes), args.baseline, logdir=args.logdir, repeats=args.repeats
    )
    print()
    print(comparison)
    return 0


def parity_flags(parser):
    parser.add_argument("--model", choices=MODELS, help="one model (default: all of them)")
    parser.add_argument("--images", type=int, default=10000, help="test images compared (default 10000)")
    parser.add_argument(
        "--keras-steps",
        type=int,
        default=200,
        help="RMSprop steps Keras trains before its weights are copied (default 200)",
    )
    parser.add_argument("--functional", action="store_true", help="use article 004's functional CNN")
    parser.add_argument(
        "--training",
        action="store_true",
        help="instead: per-step training losses over --steps steps for SGD, momentum, RMSprop and Adam",
    )
    parser.add_argument("--steps", type=int, default=100, help="training-parity steps (default 100)")
    flags.add_data_dir(parser)


def command_parity(args):
    if args.images < 1 or args.steps < 1 or args.keras_steps < 0:
        raise GraphNNError("--images and --steps must be positive, --keras-steps not negative.")
    from graph_nn.crosscheck import parity

    dataset = load_dataset(args.data_dir)
    if args.training:
        report = parity.training_report(args.model or "mlp64", dataset, args.steps)
    else:
        models = [args.model] if args.model else MODELS
        api = "functional" if args.functional else "sequential"
        report = parity.forward_report(models, dataset, args.images, args.keras_steps, api)
    show(report)
    return 0 if report.outcome else 1


def inspect_flags(parser):
    parser.add_argument("--preset", help=flags.PRESET_HELP)
    parser.add_argument("--model", help=flags.MODEL_HELP)
    parser.add_argument("--optimizer", help=flags.OPTIMIZER_HELP)
    parser.add_argument("--semantics", help="tf1 (TF1's fused optimizer ops) or keras (Keras 3's formulas as ops)")
    parser.add_argument("--batch-size", type=int, help="the static batch size of the FLOP count and the trace")
    parser.add_argument("--pbtxt", help="also write the GraphDef as text to this file")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="run one traced training step on MNIST and print its ten most expensive ops",
    )
    parser.add_argument("--run", help="instead: a finished run's logged graph, traced steps and checkpoint")
    instead = parser.add_mutually_exclusive_group()
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
    parser.add_argument("--steps-per-run", type=int, metavar="K", help="the steps of the while_loop's run")
    parser.add_argument("--towers", type=int, metavar="N", help="N copies of the model, one per device")
    flags.add_rewrite_off(parser)
    parser.add_argument(
        "--logdir",
        default="logs",
        help="where --control-flow and --xla write their graphs for TensorBoard (default logs, under inspect/)",
    )
    flags.add_data_dir(parser)


def command_inspect(args):
    config = config_from_args(args)
    dataset = None
    if args.trace or args.grappler or args.control_flow or args.xla or args.cluster:
        dataset = load_dataset(args.data_dir)
    if args.xla:
        enable_xla_on_cpu(clustering_debug=True)
    from graph_nn.internals import control_flow, grappler, inspect_cluster, inspect_graph, xla

    if args.cluster:
        report = inspect_cluster.report(config, dataset)
    elif args.run:
        report = inspect_graph.run_report(args.run)
    elif args.xla:
        report = xla.report(config, dataset, args.logdir)
    elif args.grappler:
        report = grappler.report(config, dataset)
    elif args.control_flow:
        report = control_flow.report(config, dataset, args.control_flow, args.logdir)
    else:
        report = inspect_graph.report(config, pbtxt=args.pbtxt, dataset=dataset)
    show(report)
    return 0


def export_flags(parser):
    run_flags(parser)
    parser.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="saved_model",
        help="saved_model: a frozen GraphDef and a SavedModel (the default); keras: a Keras 3 model.keras; "
        'tflite: model.tflite for TensorFlow Lite, measured in LiteRT (pip install -e ".[lite]")',
    )
    parser.add_argument(
        "--quantize",
        choices=("int8",),
        help="with --format tflite: full-integer quantization, calibrated on training images (model-int8.tflite)",
    )


EXPORT_FORMATS = ("saved_model", "keras", "tflite")


def command_export(args):
    config_module.check_weights(args.run, args.weights)
    if args.quantize and args.format != "tflite":
        raise GraphNNError(f"--quantize goes with --format tflite, not --format {args.format}.")
    dataset = load_dataset(args.data_dir)
    if args.format == "keras":
        with exclusive(written_run(args.run), "exported"):
            from graph_nn.crosscheck.keras_export import export_keras

            print(export_keras(args.run, dataset, args.checkpoint, args.weights))
        return 0
    if args.format == "tflite":
        with exclusive(written_run(args.run), "exported"):
            from graph_nn.reports.tflite import export_tflite

            print(export_tflite(args.run, dataset, args.quantize, args.checkpoint, args.weights))
        return 0
    with exclusive(written_run(args.run), "exported"):
        from graph_nn.reports.export import check_export, export_run

        print(export_run(args.run, args.checkpoint, args.weights))
    print(check_export(args.run, dataset, args.checkpoint, args.weights))
    return 0


def serve_flags(parser):
    parser.add_argument("source", metavar="RUN_OR_EXPORT", help="a run directory (exported), or an export directory")
    parser.add_argument("--port", type=int, default=8501, help="the port (default 8501, TF Serving's REST port)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes the API, which has "
        "no authentication, to every machine that can reach this one)",
    )
    parser.add_argument("--model-name", default="mnist", help="the NAME in /v1/models/NAME (default mnist)")


def command_serve(args):
    from graph_nn.serving.source import saved_model_path

    if not 0 <= args.port <= 65535:
        raise GraphNNError(f"--port takes 0 to 65535 (0: a free port), got {args.port}.")
    saved_model_path(args.source)  # a wrong path is answered before TensorFlow loads
    if importlib.util.find_spec("aiohttp") is None:
        raise GraphNNError('serve needs aiohttp: pip install -e ".[serve]".')
    from graph_nn.serving.server import serve

    return serve(args.source, args.host, args.port, args.model_name)


def records_flags(parser):
    flags.add_data_dir(parser)
    parser.add_argument(
        "--validation-size",
        type=int,
        default=5000,
        metavar="N",
        help="the training set's last N examples go to validation.tfrecords (default 5000, as convert_to_records.py)",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="where train/validation/test.tfrecords are written")


def command_convert_to_records(args):
    dataset = load_dataset(args.data_dir)
    from graph_nn.graph.tfrecords import write_records

    for name, (path, examples) in write_records(dataset, args.out_dir, args.validation_size).items():
        print(f"{name:>10}: {examples:6,} examples -> {path}")
    print(f"Train from them with: python run.py --input tfrecord --data-dir {args.out_dir}")
    return 0


def bench_flags(parser):
    parser.add_argument(
        "--models",
        help=f"comma-separated, from {','.join(MODELS)} (default mlp512,cnn; "
        f"mlp512 with --cluster), each with its article's preset",
    )
    parser.add_argument("--steps", type=int, help="timed steps per repeat (default 200; 1000 with --cluster)")
    parser.add_argument("--repeats", type=int, help="repeats; the median is reported (default 5; 1 with --cluster)")
    parser.add_argument("--json", default="bench.json", help="where to write the figures (default bench.json)")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="instead: one process vs 1 ps + 1 and 2 workers on 127.0.0.1 (steps/s, examples/s, bytes per step)",
    )
    parser.add_argument(
        "--serve",
        metavar="RUN_OR_EXPORT",
        help="instead: `serve` of this exported run over HTTP, 1, 8 and 32 clients at once, 1 image and 100 per "
        "request (requests/s, p50/p99 latency), against calling the graph in-process",
    )
    parser.add_argument("--seconds", type=float, help="with --serve: how long each measurement runs (default 3)")


def command_bench(args):
    if args.serve is not None:
        return command_bench_serve(args)
    if args.seconds is not None:
        raise GraphNNError("--seconds goes with --serve.")
    defaults = ("mlp512", 1000, 1) if args.cluster else ("mlp512,cnn", 200, 5)
    args.models, args.steps, args.repeats = (
        given or default for given, default in zip((args.models, args.steps, args.repeats), defaults)
    )
    models = tuple(args.models.split(","))
    unknown = set(models) - set(MODELS)
    if unknown:
        raise GraphNNError(f"bench measures {', '.join(MODELS)}, not {', '.join(sorted(unknown))}.")
    if args.steps <= 0 or args.repeats <= 0:
        raise GraphNNError("--steps and --repeats must be positive.")
    checked_json_path(args.json)
    if args.cluster:
        from graph_nn.experiments import bench_cluster as bench

        report = bench.run_bench(load_dataset(), args.steps, args.repeats, models)
    else:
        enable_xla_on_cpu()  # for the XLA contender; sessions that do not ask for XLA are not affected
        from graph_nn.experiments import bench

        report = bench.run_bench(load_dataset(), bench.Settings(steps=args.steps, repeats=args.repeats), models)
    show(report)
    write_figures(report, args.json)
    return 0


def checked_json_path(path):
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise GraphNNError(f"--json {path}: its directory does not exist.")


def write_figures(report, path):
    try:
        write_atomically(path, json.dumps(report.outcome, indent=2) + "\n")
    except OSError as e:
        raise GraphNNError(
            f"--json {path}: cannot write the figures ({e.strerror or e}); the table above has them."
        ) from None
    print(f"Figures written to {path}")


def command_bench_serve(args):
    from graph_nn.serving.source import saved_model_path

    if args.cluster or args.models or args.steps:
        raise GraphNNError("bench --serve measures the run it is given: --cluster, --models and --steps do not apply.")
    args.repeats = args.repeats or 3
    args.seconds = 3.0 if args.seconds is None else args.seconds
    if args.seconds <= 0 or args.repeats <= 0:
        raise GraphNNError("--seconds and --repeats must be positive.")
    saved_model_path(args.serve)  # a wrong path is answered before TensorFlow loads
    if importlib.util.find_spec("aiohttp") is None:
        raise GraphNNError('bench --serve needs aiohttp: pip install -e ".[serve]".')
    checked_json_path(args.json)
    from graph_nn.experiments import bench_serve

    report = bench_serve.run_bench(load_dataset(), args.serve, args.seconds, args.repeats)
    show(report)
    write_figures(report, args.json)
    return 0


COMMANDS = (
    Command(
        "train",
        "train a network (the default command)",
        (flags.training_flags, resume_flag, flags.cluster_task_flags),
        command_train,
    ),
    Command(
        "cluster",
        "train on a cluster of processes on this machine: parameter servers and workers on 127.0.0.1, as "
        "TensorFlow 1 distributed them",
        (flags.training_flags, cluster_resume_flag, flags.local_cluster_flags),
        command_cluster,
    ),
    Command(
        "sweep",
        "train every combination of comma-separated flag values, each an ordinary run; print a table sorted by "
        "validation accuracy",
        (listed_training_flags, sweep_flags),
        command_sweep,
    ),
    Command("evaluate", "restore a run's final checkpoint and test it", (run_flags,), command_evaluate),
    Command("summary", "print a model's layers, output shapes and parameter counts", (summary_flags,), command_summary),
    Command("predict", "predict the digit in image files (PNG, JPEG, ...)", (predict_flags,), command_predict),
    Command(
        "compare",
        "train the graph model and its Keras twin, print both results",
        (flags.training_flags, compare_flags),
        command_compare,
        keras=True,
    ),
    Command(
        "parity",
        "check the graph models against Keras: same weights, same logits",
        (parity_flags,),
        command_parity,
        keras=True,
    ),
    Command(
        "inspect",
        "print what TensorFlow built for a model: variables, slots, ops, gradients, FLOPs",
        (inspect_flags,),
        command_inspect,
    ),
    Command(
        "export",
        "freeze a run's final checkpoint into a GraphDef and a SavedModel, or write it as a Keras 3 model or for "
        "TensorFlow Lite",
        (export_flags,),
        command_export,
        keras=lambda args: args.format == "keras",
    ),
    Command(
        "serve",
        "answer TensorFlow Serving's REST API (predict, metadata, status) for an exported run, on 127.0.0.1",
        (serve_flags,),
        command_serve,
    ),
    Command(
        "convert-to-records",
        "write the data set as train/validation/test .tfrecords of tf.train.Examples, as convert_to_records.py did",
        (records_flags,),
        command_convert_to_records,
    ),
    Command(
        "bench",
        "training and inference throughput: graph mode vs Keras vs the hardware; a cluster; the server",
        (bench_flags,),
        command_bench,
        keras=lambda args: args.serve is None,
    ),
)
DEFAULT_COMMAND = "train"  # `python run.py --model cnn` is `python run.py train --model cnn`
