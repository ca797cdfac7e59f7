"""A Keras-like `model.summary()` of a graph: one row per layer scope, its output shape and parameter count."""

import dataclasses

# Parameter-free ops that change the tensor's shape, as Keras lists them (MaxPooling2D, Flatten, Reshape).
SHAPE_OPS = ("MaxPool", "Reshape")


@dataclasses.dataclass
class Row:
    name: str
    kind: str
    shape: tuple  # the output shape, None for the batch dimension
    parameters: int


def shape_of(tensor):
    return tuple(tensor.shape.as_list())


def layer_row(layer):
    kind = "Conv2D" if layer.kernel.shape.rank == 4 else "Dense"
    parameters = layer.kernel.shape.num_elements() + layer.bias.shape.num_elements()
    return Row(layer.name, kind, shape_of(layer.activations), parameters)


def shape_op_row(op):
    shape = shape_of(op.outputs[0])
    kind = "MaxPooling2D" if op.type == "MaxPool" else ("Flatten" if len(shape) == 2 else "Reshape")
    return Row(op.name, kind, shape, 0)


def summary_rows(model):
    """The forward pass in graph order: every layer and every top-level pooling or reshaping op."""
    layers = {layer.activations.op.name: layer for layer in model.layers}
    rows = []
    for op in model.graph.get_operations():
        if op.name in layers:
            rows.append(layer_row(layers[op.name]))
        elif "/" not in op.name and op.type in SHAPE_OPS:
            rows.append(shape_op_row(op))
    return rows


def format_shape(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def format_summary(model, title):
    rows = summary_rows(model)
    lines = [f'Model: "{title}"', "=" * 65, f"{'Layer (type)':<28}{'Output Shape':<24}{'Param #':>13}", "-" * 65]
    for row in rows:
        lines.append(f"{row.name + ' (' + row.kind + ')':<28}{format_shape(row.shape):<24}{row.parameters:>13,}")
    lines += ["=" * 65, f"Total params: {sum(row.parameters for row in rows):,}", "-" * 65]
    return "\n".join(lines)
