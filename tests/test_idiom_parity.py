"""The TF1 idioms against their Keras twins (graph_nn/crosscheck/idiom_parity.py): the same weights give the same
logits, the same steps the same losses and the same weights."""

from graph_nn.core.config import make_config
from graph_nn.crosscheck import idiom_parity


def test_batch_norm_logits_equal_keras_batch_normalization_on_every_test_image(mnist):
    check = idiom_parity.forward_parity(make_config(model="mlp64", batch_norm=True), mnist, train_steps=100)
    assert check.images == 10_000
    assert check.max_abs_difference <= idiom_parity.FORWARD_TOLERANCE and check.different_predictions == 0


def test_batch_norm_trains_as_keras_does_moving_statistics_included(mnist):
    # lr 0.01: at 0.1 the five-layer net turns float noise into a 1e-3 drift after ~30 steps, the formulas alike.
    config = make_config(model="mlp5", batch_norm=True, optimizer="sgd", learning_rate=0.01, semantics="keras")
    check = idiom_parity.training_parity(config, mnist, steps=50)
    assert check.max_relative_difference <= idiom_parity.TRAINING_TOLERANCE
    assert check.max_weight_difference <= 1e-5


def test_l2_trains_as_a_keras_kernel_regularizer(mnist):
    """λ·Σw², Keras's l2(λ): a penalty of Σw²/2 (tf.nn.l2_loss) would part from Keras at the first step."""
    config = make_config(model="mlp64", l2=1e-3, optimizer="sgd", learning_rate=0.1, semantics="keras")
    check = idiom_parity.training_parity(config, mnist, steps=50)
    assert check.max_relative_difference <= idiom_parity.TRAINING_TOLERANCE
    assert check.max_weight_difference <= 1e-5


def test_the_deep_model_with_batch_norm_computes_and_with_l2_trains_as_its_keras_twin(mnist):
    """mnist_deep.py's layers with the idioms.  Its training with batch norm is not compared: float noise of 1e-7 in
    the first steps grows to a relative 5e-3 by step 20 at lr 0.01 (measured), as the five-layer net's does at 0.1."""
    forward = idiom_parity.forward_parity(make_config(model="deep", batch_norm=True), mnist, train_steps=20)
    assert forward.max_abs_difference <= idiom_parity.FORWARD_TOLERANCE and forward.different_predictions == 0
    config = make_config(model="deep", l2=1e-4, optimizer="sgd", learning_rate=0.01, batch_size=50, semantics="keras")
    training = idiom_parity.training_parity(config, mnist, steps=20)
    assert training.max_relative_difference == 0.0 and training.max_weight_difference == 0.0  # measured here
