"""The command line: `python run.py [train] ...` and its sub-commands. User errors end in one sentence."""
import argparse
import sys

from graph_nn import config as config_module
from graph_nn.errors import GraphNNError

COMMANDS = ("train", "evaluate", "compare", "parity")


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
    parser.add_argument("--momentum", type=float, help="momentum (momentum, rmsprop)")
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
    add_data_flag(parser)
    parser.add_argument("--logdir", default="logs", help="where run directories go (default logs)")


def add_data_flag(parser):
    parser.add_argument("--data-dir", help="a directory of IDX files in MNIST's names (default: the shipped MNIST)")


def make_parser():
    parser = ArgumentParser(prog="graph-nn", description="TF1 graph-mode MNIST networks with TensorBoard.")
    commands = parser.add_subparsers(dest="command", parser_class=ArgumentParser)
    add_train_flags(commands.add_parser("train", help="train a network (the default command)"))
    evaluate = commands.add_parser("evaluate", help="restore a run's latest checkpoint and test it")
    evaluate.add_argument("--run", required=True, help="a run directory under logs/")
    add_data_flag(evaluate)
    add_cross_check_commands(commands)
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
             "histogram_every", "checkpoint_every")
    return config_module.make_config(args.preset, **{name: getattr(args, name) for name in names})


def command_train(args):
    from graph_nn.data import load_dataset
    from graph_nn.model import build_graph, parameter_count
    from graph_nn.train import train

    config = config_from_args(args)
    dataset = load_dataset(args.data_dir)
    print(f"graph_nn: {config.preset} preset - {config.model} ({parameter_count(build_graph(config)):,} parameters), "
          f"{config.optimizer} lr {config.learning_rate}, batch {config.batch_size}, "
          + (f"{config.steps} steps" if config.steps else f"{config.epochs} epochs")
          + f", {config.init} init, seed {config.seed}", flush=True)
    result = train(config, dataset, logdir=args.logdir)
    print(f"\nTest accuracy: {result.test_accuracy:.4f} - test loss: {result.test_loss:.4f} "
          f"(step {result.global_step})")
    print(f"Run directory: {result.run_dir}")
    print(f"Look at it in TensorBoard:  tensorboard --logdir {args.logdir}")
    return 0


def command_evaluate(args):
    from graph_nn.data import load_dataset
    from graph_nn.evaluate import evaluate_run

    loss, accuracy = evaluate_run(args.run, load_dataset(args.data_dir))
    print(f"Test accuracy: {accuracy:.4f} - test loss: {loss:.4f}")
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


def main(argv=None):
    import tensorflow as tf

    # compat.v1 APIs log deprecation notices that say nothing to a user of this tool.
    tf.get_logger().setLevel("ERROR")
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        commands = {"train": command_train, "evaluate": command_evaluate,
                    "compare": command_compare, "parity": command_parity}
        return commands[args.command](args)
    except GraphNNError as e:
        print(f"graph-nn: error: {e}", file=sys.stderr)
        return e.exit_code
