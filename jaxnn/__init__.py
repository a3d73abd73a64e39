"""jaxnn: the textbook neural-network formulas as pure JAX functions.

Forward propagation, activations, losses, a hand-derived backward pass that is
cross-checked against ``jax.grad``, and gradient descent, in the notation of
the formulas (X is (n_x, m), one column per example).
"""

from jaxnn import datasets
from jaxnn.check import (
    ActivationReport,
    GradientCheckError,
    GradientReport,
    LayerCoverage,
    LossReport,
    SearchReport,
    assert_grad,
    assert_vjp,
    check_activation,
    check_grad,
    check_gradients,
    check_loss,
    check_vjp,
    run_sweep,
    search_grad,
    search_vjp,
)
from jaxnn.core import activations, losses
from jaxnn.core.activations import ACTIVATIONS, Activation, get_activation, make_activation
from jaxnn.core.backward import (
    backward,
    linear_backward,
    output_delta,
    value_and_autodiff_grad,
    value_and_manual_grad,
)
from jaxnn.core.custom_vjp import cost_with_manual_vjp
from jaxnn.core.forward import (
    cost,
    cost_from_cache,
    forward,
    layer_forward,
    linear_forward,
    per_example_loss,
    predict,
)
from jaxnn.core.initializers import INITIALIZERS, init_params
from jaxnn.core.losses import FUSED, LOSSES, Loss, get_loss, make_loss
from jaxnn.core.network import Network
from jaxnn.core.per_example import per_example_grad_norms, per_example_grads
from jaxnn.core.precision import (
    value_and_autodiff_grad_bf16,
    value_and_manual_grad_bf16,
    with_compute_dtype,
)
from jaxnn.core.tree import relative_error, tree_norm
from jaxnn.core.update import gradient_descent, sgd_update
from jaxnn.devices import processes as distributed
from jaxnn.devices.mesh import (
    batch_sharding,
    make_mesh,
    pad_batch,
    replicate,
    shard_batch,
)
from jaxnn.train import checkpoint
from jaxnn.train.checkpoint import CheckpointError
from jaxnn.train.deprecated import make_mixed_precision_train_step, make_sharded_train_step
from jaxnn.train.divergence import DivergenceError
from jaxnn.train.epoch import epoch_order
from jaxnn.train.history import load_history, save_history
from jaxnn.train.memory import check_memory, is_out_of_memory, out_of_memory_text
from jaxnn.train.metrics import evaluate, metric_names
from jaxnn.train.optimizers import OPTIMIZERS
from jaxnn.train.state import TrainState, init_ensemble, init_state
from jaxnn.train.step import TrainStep, make_train_step, train_step
from jaxnn.train.training import fit, fit_ensemble, train_epochs

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ActivationReport",
    "CheckpointError",
    "DivergenceError",
    "FUSED",
    "GradientCheckError",
    "GradientReport",
    "INITIALIZERS",
    "LOSSES",
    "LayerCoverage",
    "Loss",
    "LossReport",
    "Network",
    "OPTIMIZERS",
    "SearchReport",
    "TrainState",
    "TrainStep",
    "activations",
    "assert_grad",
    "assert_vjp",
    "backward",
    "batch_sharding",
    "check_activation",
    "check_grad",
    "check_gradients",
    "check_loss",
    "check_memory",
    "check_vjp",
    "checkpoint",
    "cost",
    "cost_from_cache",
    "cost_with_manual_vjp",
    "datasets",
    "distributed",
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
    "is_out_of_memory",
    "layer_forward",
    "linear_backward",
    "linear_forward",
    "load_history",
    "losses",
    "make_activation",
    "make_loss",
    "make_mesh",
    "make_mixed_precision_train_step",
    "make_sharded_train_step",
    "make_train_step",
    "metric_names",
    "out_of_memory_text",
    "output_delta",
    "pad_batch",
    "per_example_grad_norms",
    "per_example_grads",
    "per_example_loss",
    "predict",
    "relative_error",
    "replicate",
    "run_sweep",
    "save_history",
    "search_grad",
    "search_vjp",
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
