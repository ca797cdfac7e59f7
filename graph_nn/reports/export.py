"""A trained run, exported for serving: a frozen GraphDef and a SavedModel, both reloadable without this package
(graph_nn/crosscheck/keras_export.py writes the Keras 3 model beside them).

run_dir/export/frozen_graph.pb   convert_variables_to_constants: the variables' values folded into Const ops,
                                 and only the ops that compute the outputs kept (no loss, gradients, optimizer)
run_dir/export/saved_model/      the graph, the model's weights and two signatures:
                                 serving_default  x [None, 784] -> probabilities [None, 10], class [None]
                                 layers           x [None, 784] -> each layer's activations, by the layer's
                                                  scope (hidden1, ..., conv1, ..., output: the logits), for
                                                  the page of `serve` to show what the network saw
"""

import dataclasses
import os
import pathlib
import shutil

import numpy as np
import tensorflow as tf

from graph_nn.core.errors import WriteFailed, write_cause
from graph_nn.core.run_dir import RunDir
from graph_nn.graph import batched
from graph_nn.graph.model import model_variables
from graph_nn.graph.sessions import session_config
from graph_nn.reports.evaluate import restored_session

v1 = tf.compat.v1
SIGNATURE = "serving_default"
LAYERS_SIGNATURE = "layers"


@dataclasses.dataclass
class Exported:
    frozen_path: pathlib.Path
    frozen_nodes: int
    frozen_bytes: int
    restored_nodes: int  # of the inference graph the checkpoint was restored into, its Saver included
    saved_model_dir: pathlib.Path
    step: int  # the global step of the checkpoint exported

    def __str__(self):
        return (
            f"Exported the checkpoint of step {self.step:,}\n"
            f"Frozen GraphDef: {self.frozen_path} - {self.frozen_nodes} nodes, {self.frozen_bytes:,} "
            f"bytes (the restored inference graph, with its Saver: {self.restored_nodes} nodes)\n"
            f"SavedModel:      {self.saved_model_dir} - signatures {SIGNATURE}: x -> probabilities, class; "
            f"{LAYERS_SIGNATURE}: x -> each layer's activations"
        )


@dataclasses.dataclass
class ExportCheck:
    differences: dict  # {export: max |probability difference| against the checkpoint} over the test images

    def __str__(self):
        return "\n".join(
            f"{name} reloaded: max |probability difference| vs the checkpoint on the test images: {diff:.2e}"
            for name, diff in self.differences.items()
        )


def output_names(model):
    return [model.probabilities.op.name, model.predictions.op.name]


def freeze(sess, model):
    """The GraphDef that computes the model's outputs, with every variable read replaced by its value."""
    return v1.graph_util.convert_variables_to_constants(sess, model.graph.as_graph_def(), output_names(model))


def write_saved_model(sess, model, path):
    builder = v1.saved_model.Builder(str(path))
    signature = v1.saved_model.predict_signature_def(
        inputs={"x": model.x}, outputs={"probabilities": model.probabilities, "class": model.predictions}
    )
    layers = v1.saved_model.predict_signature_def(
        inputs={"x": model.x}, outputs={layer.name: layer.activations for layer in model.layers}
    )
    with model.graph.as_default():
        # Dropout draws its masks from the global step, which the outputs then read (keep_prob 1 keeps all).
        dropout = any(placeholder.op.name == "input/keep_prob" for placeholder in model.train_feed)
        saver = v1.train.Saver(model_variables(model) + ([model.global_step] if dropout else []))
        builder.add_meta_graph_and_variables(
            sess,
            [v1.saved_model.SERVING],
            signature_def_map={SIGNATURE: signature, LAYERS_SIGNATURE: layers},
            saver=saver,
            strip_default_attrs=True,
        )
    builder.save()


def write_export(run_dir, frozen, write_saved_model_to):
    """frozen and the SavedModel in run_dir/export/, written beside it first and swapped in whole: an export the
    disk refuses half-way leaves the earlier one as it was."""
    partial = run_dir.export.with_name(run_dir.export.name + ".partial")
    replaced = run_dir.export.with_name(run_dir.export.name + ".replaced")
    try:
        for leftover in (partial, replaced):  # of an export killed before it ended
            shutil.rmtree(leftover, ignore_errors=True)
        partial.mkdir()
        (partial / run_dir.frozen_graph.name).write_bytes(frozen.SerializeToString())
        write_saved_model_to(partial / run_dir.saved_model.name)
        if run_dir.export.exists():
            for other in run_dir.export.iterdir():  # another format's file (model.keras), which it replaces itself
                if other.is_file() and other.name != run_dir.frozen_graph.name:
                    os.link(other, partial / other.name)
            run_dir.export.rename(replaced)
        partial.rename(run_dir.export)
    except (OSError, tf.errors.OpError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise WriteFailed(
            f"{run_dir.export}: cannot write the export ({write_cause(e, run_dir.path)}); an earlier export there "
            "is kept."
        ) from None
    shutil.rmtree(replaced, ignore_errors=True)


def export_run(run_dir, which=None, weights="raw"):
    """Writes run_dir/export/ (replacing an earlier export) from the run's final (or "best" or "latest")
    checkpoint."""
    run_dir = RunDir(run_dir)
    with restored_session(run_dir, which, weights) as (sess, model, _):
        frozen = freeze(sess, model)
        restored_nodes = len(model.graph.as_graph_def().node)
        step = int(sess.run(model.global_step))
        write_export(run_dir, frozen, lambda path: write_saved_model(sess, model, path))
    return Exported(
        run_dir.frozen_graph,
        len(frozen.node),
        run_dir.frozen_graph.stat().st_size,
        restored_nodes,
        run_dir.saved_model,
        step,
    )


def frozen_session_config():
    """Grappler's remapper fuses MatMul+BiasAdd+Relu; with the weights now constants, oneDNN packs them once
    and sums in another order, which moves probabilities by up to ~1.3e-6 from the checkpoint's. Without the
    fusion the frozen graph computes exactly what the checkpoint's graph does."""
    return session_config(rewrites_off=("remapper",))


def frozen_predictions(path, images):
    """(probabilities, classes) from a frozen GraphDef file, imported into a new graph."""
    graph_def = v1.GraphDef()
    graph_def.ParseFromString(pathlib.Path(path).read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    with v1.Session(graph=graph, config=frozen_session_config()) as sess:
        outputs = ["output/probabilities:0", "output/predictions:0"]
        return tuple(batched.run_batched(sess, outputs, "input/x:0", images))


def saved_model_predictions(path, images):
    """(probabilities, classes) from a SavedModel's serving_default signature, loaded into a new graph."""
    with v1.Session(graph=tf.Graph()) as sess:
        signature = v1.saved_model.load(sess, [v1.saved_model.SERVING], str(path)).signature_def[SIGNATURE]
        outputs = [signature.outputs["probabilities"].name, signature.outputs["class"].name]
        return tuple(batched.run_batched(sess, outputs, signature.inputs["x"].name, images))


def checkpoint_probabilities(run_dir, images, which=None, weights="raw"):
    with restored_session(run_dir, which, weights) as (sess, model, _):
        return batched.probabilities(sess, model, images)


def check_export(run_dir, dataset, which=None, weights="raw"):
    """How far each export's probabilities are from the checkpoint's on the test images."""
    run_dir = RunDir(run_dir)
    images = dataset.test.images
    expected = checkpoint_probabilities(run_dir, images, which, weights)
    reloaded = {
        "frozen GraphDef": frozen_predictions(run_dir.frozen_graph, images),
        "SavedModel": saved_model_predictions(run_dir.saved_model, images),
    }
    return ExportCheck(
        {name: float(np.abs(probabilities - expected).max()) for name, (probabilities, _) in reloaded.items()}
    )
