"""jaxnn: the textbook neural-network formulas as pure JAX functions.

Forward propagation, activations, losses, a hand-derived backward pass that is
cross-checked against ``jax.grad``, and gradient descent, in the notation of
the formulas (X is (n_x, m), one column per example).
"""

# Built on the core above: verification toolkit, training engine, scaling.
from jaxnn import checkpoint, datasets, distributed
from jaxnn._tree import relative_error, tree_norm
from jaxnn.activations import ACTIVATIONS, Activation, get_activation, make_activation
from jaxnn.backward import (
    backward,
    linear_backward,
    output_delta,
    value_and_autodiff_grad,
    value_and_manual_grad,
)
from jaxnn.check import (
    ActivationReport,
    GradientCheckError,
    GradientReport,
    LayerCoverage,
    LossReport,
    check_activation,
    check_grad,
    check_gradients,
    check_loss,
    check_vjp,
    run_sweep,
)
from jaxnn.checkpoint import CheckpointError
from jaxnn.custom_vjp import cost_with_manual_vjp
from jaxnn.forward import cost, cost_from_cache, forward, layer_forward, linear_forward, predict
from jaxnn.initializers import INITIALIZERS, init_params
from jaxnn.losses import FUSED, LOSSES, Loss, get_loss, make_loss
from jaxnn.network import Network
from jaxnn.parallel import (
    batch_sharding,
    make_mesh,
    make_sharded_train_step,
    pad_batch,
    replicate,
    shard_batch,
)
from jaxnn.per_example import per_example_grad_norms, per_example_grads
from jaxnn.precision import (
    value_and_autodiff_grad_bf16,
    value_and_manual_grad_bf16,
    with_compute_dtype,
)
from jaxnn.divergence import DivergenceError
from jaxnn.epoch import epoch_order
from jaxnn.forward import per_example_loss
from jaxnn.history import load_history, save_history
from jaxnn.metrics import evaluate, metric_names
from jaxnn.optimizers import OPTIMIZERS, gradient_descent
from jaxnn.step import make_mixed_precision_train_step, make_train_step, train_step
from jaxnn.train_state import TrainState, init_ensemble, init_state
from jaxnn.training import fit, fit_ensemble, train_epochs
from jaxnn.updates import sgd_update

__version__ = "0.1.0"

__all__ = [
    "per_example_grads",
    "per_example_grad_norms",
    "cost_with_manual_vjp",
    "ACTIVATIONS",
    "FUSED",
    "INITIALIZERS",
    "LOSSES",
    "OPTIMIZERS",
    "Activation",
    "ActivationReport",
    "CheckpointError",
    "DivergenceError",
    "GradientCheckError",
    "GradientReport",
    "Loss",
    "LayerCoverage",
    "LossReport",
    "Network",
    "TrainState",
    "backward",
    "batch_sharding",
    "check_activation",
    "check_grad",
    "check_gradients",
    "check_loss",
    "check_vjp",
    "checkpoint",
    "datasets",
    "distributed",
    "cost",
    "cost_from_cache",
    "epoch_order",
    "evaluate",
    "fit",
    "fit_ensemble",
    "forward",
    "get_activation",
    "get_loss",
    "gradient_descent",
    "init_ensemble",
    "init_params",
    "init_state",
    "layer_forward",
    "linear_backward",
    "linear_forward",
    "load_history",
    "make_activation",
    "make_loss",
    "make_mesh",
    "make_mixed_precision_train_step",
    "make_sharded_train_step",
    "make_train_step",
    "metric_names",
    "output_delta",
    "pad_batch",
    "per_example_loss",
    "predict",
    "relative_error",
    "replicate",
    "run_sweep",
    "save_history",
    "sgd_update",
    "shard_batch",
    "train_epochs",
    "train_step",
    "tree_norm",
    "value_and_autodiff_grad",
    "value_and_autodiff_grad_bf16",
    "value_and_manual_grad",
    "value_and_manual_grad_bf16",
    "with_compute_dtype",
]
