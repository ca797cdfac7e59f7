"""--towers N: N copies of the model in one graph, one per device, as TF1's cifar10_multi_gpu_train.py has them.

The fed batch (--batch-size, the whole step's) is split in the graph into N nearly equal parts, np.array_split's
way; tower i computes the model and its loss on part i on its device, and the gradients of that loss.  The
towers' gradients, each weighted by its part's share n_i/n of the batch, are summed in train/: the step the
optimizer applies once is the whole batch's, in exact arithmetic, whatever the parts' sizes.

What the Graph tab shows: split/ feeding tower_0 ... tower_N-1, one box per tower with its layers, its loss
and its gradients (tower_i/gradients), placed on /gpu:i, or /cpu:i of a session with device_count
{"CPU": N}; the variables stay in the layer boxes at the top level (hidden1/kernel, ...) on the CPU, shared by
every tower through variable_scope reuse, so that a checkpoint has the names of a single-tower run's.
"""

import tensorflow as tf

v1 = tf.compat.v1
VARIABLE_OPS = ("Variable", "VariableV2", "VarHandleOp")


def devices(count):
    """/gpu:0 ... where the machine has a GPU per tower, else /cpu:0 ... (session_config(cpus=count) makes them)."""
    kind = "gpu" if len(tf.config.list_physical_devices("GPU")) >= count else "cpu"
    return [f"/{kind}:{i}" for i in range(count)]


def on(device):
    """The device function of a tower: its ops on `device`, the variables on the CPU (cifar10's
    _variable_on_cpu), where every tower reads them and the one update writes them."""
    return lambda op: "/cpu:0" if op.type in VARIABLE_OPS else device


def split(x, y, count):
    """The batch in `count` parts, the first n % count of them one example longer (np.array_split's sizes, so an
    epoch's short last batch splits too): ([(x_i, y_i)], [n_i / n])."""
    with v1.name_scope("split"):
        n = tf.shape(x)[0]
        sizes = n // count + tf.cast(tf.range(count) < n % count, tf.int32)
        shares = tf.unstack(tf.cast(sizes, tf.float32) / tf.cast(n, tf.float32), num=count, name="shares")
        parts = zip(tf.split(x, sizes, num=count, name="x"), tf.split(y, sizes, num=count, name="y"))
    return list(parts), shares


def replicate(x, y, count, tower, optimizer):
    """tower(i, x_i, y_i) -> (result, loss) built in each tower; returns ([result_i], grads_and_vars), the
    gradients of the whole batch: each tower's weighted by its share, summed."""
    parts, shares = split(x, y, count)
    results, gradients = [], []
    with v1.variable_scope(v1.get_variable_scope()):
        for i, ((x_i, y_i), device) in enumerate(zip(parts, devices(count))):
            with v1.device(on(device)), v1.name_scope(f"tower_{i}"):
                result, loss = tower(i, x_i, y_i)
                gradients.append(optimizer.compute_gradients(loss))
            results.append(result)
            v1.get_variable_scope().reuse_variables()  # the next towers get these variables
    return results, average(gradients, shares)


def average(tower_gradients, shares):
    """Σ_i share_i · gradient_i for each variable: with equal parts, the towers' mean; a plain sum would be an N
    times larger step (the classic mistake, measured in docs/idioms.md)."""
    with v1.name_scope("train/average/"):
        averaged = []
        for pairs in zip(*tower_gradients):
            variable = pairs[0][1]
            weighted = [share * gradient for share, (gradient, _) in zip(shares, pairs)]
            averaged.append((tf.add_n(weighted), variable))
    return averaged
