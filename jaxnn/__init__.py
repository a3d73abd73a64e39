"""jaxnn: the textbook neural-network formulas as pure JAX functions.

Forward propagation, activations, losses, a hand-derived backward pass that is
cross-checked against ``jax.grad``, and gradient descent, in the notation of
the seed formulas (X is (n_x, m), one column per example).
"""

from jaxnn.activations import ACTIVATIONS, Activation, get_activation, make_activation
from jaxnn.backward import (
    backward,
    linear_backward,
    output_delta,
    value_and_autodiff_grad,
    value_and_manual_grad,
)
from jaxnn.forward import cost, cost_from_cache, forward, layer_forward, linear_forward, predict
from jaxnn.initializers import INITIALIZERS, init_params
from jaxnn.losses import FUSED, LOSSES, Loss, get_loss, make_loss
from jaxnn.network import Network
from jaxnn._tree import relative_error, tree_norm
from jaxnn.updates import make_train_step, sgd_update

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "FUSED",
    "INITIALIZERS",
    "LOSSES",
    "Activation",
    "Loss",
    "Network",
    "backward",
    "cost",
    "cost_from_cache",
    "forward",
    "get_activation",
    "get_loss",
    "init_params",
    "layer_forward",
    "linear_backward",
    "linear_forward",
    "make_activation",
    "make_loss",
    "make_train_step",
    "output_delta",
    "predict",
    "relative_error",
    "sgd_update",
    "tree_norm",
    "value_and_autodiff_grad",
    "value_and_manual_grad",
]
