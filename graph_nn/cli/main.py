"""The command line: `python run.py [train] ...` and its sub-commands.

This module parses and dispatches: the parser, its help and the dispatch all come from the commands in
graph_nn/cli/commands.py.  Nothing here imports TensorFlow: a command imports what it needs when it runs, so that
`--help` and every flag mistake are answered at once.  User errors end in one sentence and a non-zero exit.
"""

import argparse
import logging
import os
import signal
import sys
import threading

from graph_nn.cli.commands import COMMANDS, DEFAULT_COMMAND
from graph_nn.cli.startup import filter_native_stderr, without_keras
from graph_nn.core.errors import GraphNNError


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise GraphNNError(message + ".")


def make_parser():
    parser = ArgumentParser(prog="graph-nn", description="TF1 graph-mode MNIST networks with TensorBoard.")
    subparsers = parser.add_subparsers(dest="command", parser_class=ArgumentParser)
    for command in COMMANDS:
        subparser = subparsers.add_parser(command.name, help=command.help, description=command.help)
        subparser.add_argument(
            "--verbose",
            action="store_true",
            help="show TensorFlow's own log lines (C++ start-up notices, deprecations)",
        )
        for add_flags in command.flags:
            add_flags(subparser)
    return parser


def parse_args(argv):
    argv = list(argv)
    if not argv or (argv[0] not in {command.name for command in COMMANDS} and argv[0] not in ("-h", "--help")):
        argv.insert(0, DEFAULT_COMMAND)
    return make_parser().parse_args(argv)


# The thread that writes a TensorFlow FileWriter's events: its failure (a full disk) comes back as a WriteFailed
# from the writer's next call (graph_nn/observe/summaries.py), so its own traceback and log line add only noise.
EVENT_WRITER_THREAD = "EventLoggerThread"


def not_an_event_writer_failure(record):
    return not record.getMessage().startswith("EventFileWriter writer thread error")


def not_a_graph_written_again(record):
    """Each session of a resumed run writes its graph into train/ again; the report reads those files with
    TensorBoard's reader, which keeps the newest graph (the run's own) and warns about the earlier ones."""
    return not record.getMessage().startswith(("Found more than one graph event", "Found more than one metagraph"))


def hide_event_writer_thread_failures():
    print_failure = threading.excepthook

    def excepthook(args):
        if args.thread is None or args.thread.name != EVENT_WRITER_THREAD:
            print_failure(args)

    threading.excepthook = excepthook


def quiet_tensorflow():
    """TensorFlow's log lines off the terminal; called before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # compat.v1 APIs log deprecation notices that say nothing to a user of this tool.  The logger is
    # tf.get_logger()'s, set without importing TensorFlow.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").addFilter(not_an_event_writer_failure)
    logging.getLogger("tensorboard").addFilter(not_a_graph_written_again)
    filter_native_stderr()


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        hide_event_writer_thread_failures()
        if not args.verbose:
            quiet_tensorflow()
        command = next(command for command in COMMANDS if command.name == args.command)
        if command.keras(args) if callable(command.keras) else command.keras:
            return command.run(args)
        with without_keras():
            return command.run(args)
    except GraphNNError as e:
        print(f"graph-nn: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:  # Ctrl-C before training started: nothing to save yet
        print("\ngraph-nn: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output has gone (python run.py inspect | head): end quietly with the status of a
        # Unix tool stopped by SIGPIPE.  Training turns it into a stop request instead (graph_nn/core/signals.py).
        # stdout now leads nowhere, so that flushing it on the way out cannot fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
