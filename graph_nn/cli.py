"""The command line: `python run.py [train] ...` and its sub-commands. User errors end in one sentence."""
import argparse
import sys

from graph_nn import config as config_module
from graph_nn.errors import GraphNNError

COMMANDS = ("train", "evaluate", "bench")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise GraphNNError(message + ".")


def add_train_flags(parser):
    parser.add_argument("--preset", help=f"one of {', '.join(config_module.PRESETS)} "
                                         f"(default {config_module.DEFAULT_PRESET}); flags below override it")
    parser.add_argument("--model", help=f"one of {', '.join(config_module.MODELS)}")
    parser.add_argument("--init", help="glorot_uniform (Keras's default) or random_normal (stddev 1, the TF1 article)")
    parser.add_argument("--optimizer", help=f"one of {', '.join(config_module.OPTIMIZERS)}")
    parser.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float)
    parser.add_argument("--momentum", type=float, help="momentum (momentum, rmsprop)")
    parser.add_argument("--rho", type=float, help="RMSProp's decay of the mean square")
    parser.add_argument("--beta1", type=float, help="Adam's first-moment decay")
    parser.add_argument("--beta2", type=float, help="Adam's second-moment decay")
    parser.add_argument("--epsilon", type=float, help="RMSProp/Adam epsilon (default: TF1's 1e-10 / 1e-8)")
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
    bench = commands.add_parser("bench", help="training and inference throughput: graph mode vs Keras vs the hardware")
    bench.add_argument("--models", default="mlp512,cnn", help="comma-separated, from mlp512,cnn (default both)")
    bench.add_argument("--steps", type=int, default=200, help="timed steps per repeat (default 200)")
    bench.add_argument("--repeats", type=int, default=5, help="repeats; the median is reported (default 5)")
    bench.add_argument("--json", default="bench.json", help="where to write the figures (default bench.json)")
    return parser


def parse_args(argv):
    argv = list(argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "train")
    return make_parser().parse_args(argv)


def config_from_args(args):
    names = ("model", "init", "optimizer", "learning_rate", "momentum", "rho", "beta1", "beta2", "epsilon",
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


def command_bench(args):
    from graph_nn import bench
    from graph_nn.data import load_dataset

    models = tuple(args.models.split(","))
    unknown = set(models) - set(bench.CONFIGURATIONS)
    if unknown:
        raise GraphNNError(f"bench measures {', '.join(bench.CONFIGURATIONS)}, not {', '.join(sorted(unknown))}.")
    if args.steps <= 0 or args.repeats <= 0:
        raise GraphNNError("--steps and --repeats must be positive.")
    report = bench.run_bench(load_dataset(), bench.Settings(steps=args.steps, repeats=args.repeats), models)
    print(bench.format_report(report))
    bench.write_json(report, args.json)
    print(f"Figures written to {args.json}")
    return 0


def main(argv=None):
    import tensorflow as tf

    # compat.v1 APIs log deprecation notices that say nothing to a user of this tool.
    tf.get_logger().setLevel("ERROR")
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        return {"train": command_train, "evaluate": command_evaluate, "bench": command_bench}[args.command](args)
    except GraphNNError as e:
        print(f"graph-nn: error: {e}", file=sys.stderr)
        return e.exit_code
