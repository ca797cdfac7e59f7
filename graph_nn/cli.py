"""The command line: `python run.py [train] ...` and its sub-commands. User errors end in one sentence."""
import argparse
import dataclasses
import os
import sys

from graph_nn import config as config_module
from graph_nn.errors import GraphNNError

COMMANDS = ("train", "evaluate", "summary", "predict", "compare", "parity", "inspect", "export", "bench")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise GraphNNError(message + ".")


def add_train_flags(parser):
    parser.add_argument("--preset", help=f"one of {', '.join(config_module.PRESETS)} "
                                         f"(default {config_module.DEFAULT_PRESET}); flags below override it")
    parser.add_argument("--model", help=f"one of {', '.join(config_module.MODELS)}")
    parser.add_argument("--init", help="glorot_uniform (Keras's default) or random_normal (stddev 1, the TF1 article)")
    parser.add_argument("--optimizer", help=f"one of {', '.join(config_module.OPTIMIZERS)}")
    parser.add_argument("--semantics", help="tf1 (TF1's optimizers, the default) or keras (Keras 3's update formulas)")
    parser.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float)
    parser.add_argument("--momentum", type=float, help="momentum (default 0.9 for --optimizer momentum, 0 for rmsprop)")
    parser.add_argument("--rho", type=float, help="RMSProp's decay of the mean square")
    parser.add_argument("--beta1", type=float, help="Adam's first-moment decay")
    parser.add_argument("--beta2", type=float, help="Adam's second-moment decay")
    parser.add_argument("--epsilon", type=float,
                        help="RMSProp/Adam epsilon (default: TF1's 1e-10 / 1e-8, Keras's 1e-7)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--steps", type=int, help="train this many steps instead of whole epochs")
    parser.add_argument("--batching", help="shuffle (seeded, per epoch) or sequential (the TF1 article's slices)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--eval-every", type=int, help="steps between test-set evaluations (default: each epoch)")
    parser.add_argument("--print-every", type=int, help="print a line every N steps instead of a progress bar")
    parser.add_argument("--log-every", type=int, help="steps between train loss/accuracy summaries (default 50)")
    parser.add_argument("--histogram-every", type=int, help="steps between histogram summaries (default 200)")
    parser.add_argument("--checkpoint-every", type=int, help="steps between extra checkpoints")
    parser.add_argument("--trace-steps", type=step_list, help="steps to trace fully, e.g. 100,200 (RunMetadata "
                                                              "in TensorBoard's Graph tab, a Chrome trace in traces/)")
    add_data_flag(parser)
    parser.add_argument("--logdir", default="logs", help="where run directories go (default logs)")


def step_list(text):
    try:
        return tuple(int(step) for step in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected step numbers separated by commas, got '{text}'") from None


def add_inspect_command(commands):
    inspect = commands.add_parser("inspect", help="print what TensorFlow built for a model: variables, slots, "
                                                  "ops, gradients, FLOPs")
    inspect.add_argument("--preset", help=f"one of {', '.join(config_module.PRESETS)} "
                                          f"(default {config_module.DEFAULT_PRESET}); flags below override it")
    inspect.add_argument("--model", help=f"one of {', '.join(config_module.MODELS)}")
    inspect.add_argument("--optimizer", help=f"one of {', '.join(config_module.OPTIMIZERS)}")
    inspect.add_argument("--semantics", help="tf1 (TF1's fused optimizer ops) or keras (Keras 3's formulas as ops)")
    inspect.add_argument("--batch-size", type=int, help="the static batch size of the FLOP count and the trace")
    inspect.add_argument("--pbtxt", help="also write the GraphDef as text to this file")
    inspect.add_argument("--trace", action="store_true", help="run one traced training step on MNIST and print "
                                                              "its ten most expensive ops")
    inspect.add_argument("--run", help="instead: a finished run's logged graph, traced steps and checkpoint")
    add_data_flag(inspect)


def add_export_command(commands):
    export = commands.add_parser("export", help="freeze a run's latest checkpoint into a GraphDef and a SavedModel")
    export.add_argument("--run", required=True, help="a run directory under logs/")
    add_data_flag(export)


def add_data_flag(parser):
    parser.add_argument("--data-dir", help="a directory of IDX files in MNIST's names (default: the shipped MNIST)")


def make_parser():
    parser = ArgumentParser(prog="graph-nn", description="TF1 graph-mode MNIST networks with TensorBoard.")
    commands = parser.add_subparsers(dest="command", parser_class=ArgumentParser)
    train = commands.add_parser("train", help="train a network (the default command)")
    add_train_flags(train)
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its latest checkpoint, "
                                                           "in its directory and with its configuration")
    evaluate = commands.add_parser("evaluate", help="restore a run's latest checkpoint and test it")
    evaluate.add_argument("--run", required=True, help="a run directory under logs/")
    add_data_flag(evaluate)
    summary = commands.add_parser("summary", help="print a model's layers, output shapes and parameter counts")
    summary.add_argument("--model", required=True, help=f"one of {', '.join(config_module.MODELS)}")
    predict = commands.add_parser("predict", help="predict the digit in image files (PNG, JPEG, ...)")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="one handwritten digit per file, any size")
    predict.add_argument("--run", help="a run directory (default: the newest run under --logdir)")
    predict.add_argument("--logdir", default="logs", help="where to look for the newest run (default logs)")
    add_cross_check_commands(commands)
    add_inspect_command(commands)
    add_export_command(commands)
    bench = commands.add_parser("bench", help="training and inference throughput: graph mode vs Keras vs the hardware")
    bench.add_argument("--models", default="mlp512,cnn", help="comma-separated, from mlp512,cnn (default both)")
    bench.add_argument("--steps", type=int, default=200, help="timed steps per repeat (default 200)")
    bench.add_argument("--repeats", type=int, default=5, help="repeats; the median is reported (default 5)")
    bench.add_argument("--json", default="bench.json", help="where to write the figures (default bench.json)")
    return parser


def add_cross_check_commands(commands):
    from graph_nn.keras_baselines import RECIPES

    compare = commands.add_parser("compare", help="train the graph model and its Keras twin, print both results")
    add_train_flags(compare)
    compare.add_argument("--baseline", help=f"the Keras recipe: one of {', '.join(RECIPES)} "
                                            "(default: the preset's article; without --preset, its preset)")
    compare.add_argument("--repeats", type=int, default=1,
                         help="train both this many times, seeds --seed, --seed + 1, ...; print means (default 1)")
    parity = commands.add_parser("parity", help="check the graph models against Keras: same weights, same logits")
    parity.add_argument("--model", choices=config_module.MODELS, help="one model (default: all four)")
    parity.add_argument("--images", type=int, default=10000, help="test images compared (default 10000)")
    parity.add_argument("--keras-steps", type=int, default=200,
                        help="RMSprop steps Keras trains before its weights are copied (default 200)")
    parity.add_argument("--functional", action="store_true", help="use article 004's functional CNN")
    parity.add_argument("--training", action="store_true",
                        help="instead: per-step training losses over --steps steps for SGD, RMSprop and Adam")
    parity.add_argument("--steps", type=int, default=100, help="training-parity steps (default 100)")
    add_data_flag(parity)


def parse_args(argv):
    argv = list(argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "train")
    return make_parser().parse_args(argv)


def config_from_args(args):
    names = ("model", "init", "optimizer", "semantics", "learning_rate", "momentum", "rho", "beta1", "beta2", "epsilon",
             "batch_size", "epochs", "steps", "batching", "seed", "eval_every", "print_every", "log_every",
             "histogram_every", "checkpoint_every", "trace_steps")
    return config_module.make_config(args.preset, **{name: getattr(args, name) for name in names})


def refuse_changed_flags(run_dir, config, args):
    """--resume continues a run as it was configured: a flag given with another value is a mistake."""
    for name in (field.name for field in dataclasses.fields(config)):
        given, saved = getattr(args, name, None), getattr(config, name)
        if given is not None and given != saved:
            raise GraphNNError(f"{run_dir} was trained with --{name.replace('_', '-')} {saved}, not {given}; "
                               f"--resume continues a run with the configuration in its config.json.")


def command_resume(args):
    from graph_nn.data import load_dataset

    if not os.path.isdir(args.resume):
        raise GraphNNError(f"--resume {args.resume}: no such run directory.")
    config = config_module.load_config(args.resume)
    config_module.validate(config)
    refuse_changed_flags(args.resume, config, args)
    dataset = load_dataset(args.data_dir)
    from graph_nn.train import resume

    print(f"graph_nn: resuming a {config.model} run - {config.optimizer} lr {config.learning_rate}, "
          f"batch {config.batch_size}, seed {config.seed}", flush=True)
    finish_run(resume(args.resume, dataset), dataset, os.path.dirname(os.path.abspath(args.resume)))
    return 0


def finish_run(result, dataset, logdir):
    """The end of a run, first or resumed: its report, pictures and TensorBoard extras, and where to look."""
    from graph_nn.evaluate import report_run

    print()
    report_run(result.run_dir, dataset, history=result.history, tensorboard=True)
    print(f"Run directory: {result.run_dir}")
    print(f"Look at it in TensorBoard:  tensorboard --logdir {logdir}")


def command_train(args):
    if args.resume:
        return command_resume(args)
    from graph_nn.data import load_dataset

    config = config_from_args(args)
    dataset = load_dataset(args.data_dir)
    # TensorFlow (seconds to import) only now, so that bad flags and bad data are answered at once.
    from graph_nn.model import build_graph, parameter_count
    from graph_nn.model_summary import format_summary
    from graph_nn.train import train

    model = build_graph(config)
    print(format_summary(model, config.model))
    print(f"graph_nn: {config.preset} preset - {config.model} ({parameter_count(model):,} parameters), "
          f"{config.optimizer} ({config.semantics} semantics) lr {config.learning_rate}, batch {config.batch_size}, "
          + (f"{config.steps} steps" if config.steps else f"{config.epochs} epochs")
          + f", {config.init} init, seed {config.seed}", flush=True)
    finish_run(train(config, dataset, logdir=args.logdir), dataset, args.logdir)
    return 0


def command_evaluate(args):
    from graph_nn.data import load_dataset
    from graph_nn.evaluate import report_run

    report_run(args.run, load_dataset(args.data_dir))
    print(f"Pictures saved in {args.run}")
    return 0


def command_summary(args):
    from graph_nn.model import build_graph
    from graph_nn.model_summary import format_summary

    print(format_summary(build_graph(config_module.make_config(model=args.model)), args.model))
    return 0


def command_predict(args):
    from graph_nn.predict import format_prediction, predict_files
    from graph_nn.runs import newest_run

    run_dir = args.run or newest_run(args.logdir)
    predictions = predict_files(run_dir, args.images)
    for prediction in predictions:
        if prediction.error:
            print(f"graph-nn: error: {prediction.error}", file=sys.stderr)
        else:
            print(format_prediction(prediction))
    return GraphNNError.exit_code if any(p.error for p in predictions) else 0


def command_inspect(args):
    from graph_nn.inspect_graph import report, run_report

    if args.run:
        run_report(args.run, sys.stdout)
        return 0
    config = config_module.make_config(args.preset, model=args.model, optimizer=args.optimizer,
                                       semantics=args.semantics, batch_size=args.batch_size)
    dataset = None
    if args.trace:
        from graph_nn.data import load_dataset

        dataset = load_dataset(args.data_dir)
    report(config, sys.stdout, pbtxt=args.pbtxt, dataset=dataset)
    return 0


def command_export(args):
    from graph_nn.data import load_dataset
    from graph_nn.export import check_export, export_run

    exported = export_run(args.run)
    print(f"Frozen GraphDef: {exported.frozen_path} - {exported.frozen_nodes} nodes, {exported.frozen_bytes:,} bytes "
          f"(the restored training graph, with its Saver: {exported.training_nodes} nodes)")
    print(f"SavedModel:      {exported.saved_model_dir} - signature serving_default: x -> probabilities, class")
    for name, max_diff in check_export(args.run, load_dataset(args.data_dir)).items():
        print(f"{name} reloaded: max |probability difference| vs the checkpoint on the test images: {max_diff:.2e}")
    return 0


def command_compare(args):
    from graph_nn.compare import compare, format_table
    from graph_nn.data import load_dataset
    from graph_nn.keras_baselines import RECIPES

    if args.preset is None and args.baseline in RECIPES:
        args.preset = RECIPES[args.baseline].preset  # `compare --baseline cnn-onehot` trains article 004's set-up
    config = config_from_args(args)
    comparison = compare(config, load_dataset(args.data_dir), args.baseline, logdir=args.logdir,
                         repeats=args.repeats)
    print()
    print(format_table(comparison))
    print(f"Graph run directories: {', '.join(map(str, comparison.run_dirs))}")
    return 0


def command_parity(args):
    from graph_nn import parity
    from graph_nn.data import load_dataset

    if args.images < 1 or args.steps < 1 or args.keras_steps < 0:
        raise GraphNNError("--images and --steps must be positive, --keras-steps not negative.")
    dataset = load_dataset(args.data_dir)
    ok = True
    if args.training:
        print(f"training parity: per-step training loss, graph vs Keras, {args.steps} steps from equal weights")
        for semantics, result in parity.training_checks(args.model or "mlp64", dataset, args.steps):
            verdict = "holds" if result.holds else f"differs from step {result.first_failing_step}"
            print(f"  {result.optimizer:8} {semantics:6} semantics: max relative difference "
                  f"{result.max_relative_difference:.1e} (tolerance {result.tolerance:.0e}) - {verdict}")
            ok = ok and (result.holds or semantics != "keras")
    else:
        api = "functional" if args.functional else "sequential"
        print(f"forward parity: Keras weights in the graph model, logits on {args.images} test images")
        for model in [args.model] if args.model else config_module.MODELS:
            result = parity.forward_parity(model, dataset, args.images, args.keras_steps, api)
            print(f"  {model:7} max |logit difference| {result.max_abs_difference:.1e} "
                  f"(tolerance {parity.FORWARD_TOLERANCE:.0e}), different predictions "
                  f"{result.different_predictions}/{result.images} - {'holds' if result.holds else 'FAILS'}")
            ok = ok and result.holds
    return 0 if ok else 1


def command_bench(args):
    from graph_nn import bench
    from graph_nn.data import load_dataset

    models = tuple(args.models.split(","))
    unknown = set(models) - set(bench.CONFIGURATIONS)
    if unknown:
        raise GraphNNError(f"bench measures {', '.join(bench.CONFIGURATIONS)}, not {', '.join(sorted(unknown))}.")
    if args.steps <= 0 or args.repeats <= 0:
        raise GraphNNError("--steps and --repeats must be positive.")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise GraphNNError(f"--json {args.json}: its directory does not exist.")
    report = bench.run_bench(load_dataset(), bench.Settings(steps=args.steps, repeats=args.repeats), models)
    print(bench.format_report(report))
    try:
        bench.write_json(report, args.json)
    except OSError as e:
        raise GraphNNError(f"--json {args.json}: cannot write the figures ({e.strerror or e}); "
                           f"the table above has them.") from None
    print(f"Figures written to {args.json}")
    return 0


def main(argv=None):
    import logging

    # compat.v1 APIs log deprecation notices that say nothing to a user of this tool.  The logger is
    # tf.get_logger()'s, set without importing TensorFlow so that a mistyped flag is answered at once.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        commands = {"train": command_train, "evaluate": command_evaluate, "summary": command_summary,
                    "predict": command_predict, "compare": command_compare, "parity": command_parity,
                    "inspect": command_inspect, "export": command_export, "bench": command_bench}
        return commands[args.command](args)
    except GraphNNError as e:
        print(f"graph-nn: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:  # Ctrl-C before training started: nothing to save yet
        print("\ngraph-nn: interrupted.", file=sys.stderr)
        return 130
