"""The house rules of the package layout (conventions, "Where things live"), read from the imports.

core imports nothing else of jaxnn; devices and datasets import only core; check and train import
core (train also devices), never each other; cli imports only the public faces (``jaxnn``,
``jaxnn.check``, ``jaxnn.datasets``) and its own modules; no module imports another's private
``_name``; and ``import jaxnn`` exposes the same public names as before the wings.
"""

import ast
from pathlib import Path

import pytest

import jaxnn

ROOT = Path(__file__).resolve().parents[1] / "jaxnn"

# what each wing may import from jaxnn (prefixes of module paths)
ALLOWED = {
    "core": ("jaxnn.core",),
    "devices": ("jaxnn.core", "jaxnn.devices"),
    "datasets": ("jaxnn.core", "jaxnn.datasets"),
    "check": ("jaxnn.core", "jaxnn.check"),
    "train": ("jaxnn.core", "jaxnn.devices", "jaxnn.train"),
    "cli": ("jaxnn.cli",),
}
# the public faces, and the version shim (the CLI must run on every supported jax too)
CLI_FACES = {"jaxnn", "jaxnn.check", "jaxnn.datasets", "jaxnn.core.compat"}

# the public names of ``import jaxnn`` (its __all__); a name leaves only with a deprecation release
PUBLIC = {
    "ACTIVATIONS", "Activation", "ActivationReport", "CheckpointError", "DivergenceError", "FUSED",
    "GradientCheckError", "GradientReport", "INITIALIZERS", "LOSSES", "LayerCoverage", "Loss",
    "LossReport", "Network", "OPTIMIZERS", "SearchReport", "TrainState", "TrainStep", "assert_grad",
    "assert_vjp", "backward", "batch_sharding",
    "check_activation", "check_grad", "check_gradients", "check_loss", "check_memory",
    "check_vjp", "checkpoint",
    "cost", "cost_from_cache", "cost_with_manual_vjp", "datasets", "distributed", "epoch_order",
    "evaluate", "fit", "fit_ensemble", "forward", "get_activation", "get_loss", "gradient_descent",
    "init_ensemble", "init_params", "init_state", "is_out_of_memory", "layer_forward", "linear_backward",
    "linear_forward", "load_history", "make_activation", "make_loss", "make_mesh",
    "make_mixed_precision_train_step", "out_of_memory_text",
    "make_sharded_train_step", "make_train_step", "metric_names", "output_delta", "pad_batch",
    "per_example_grad_norms", "per_example_grads", "per_example_loss", "predict", "relative_error",
    "replicate", "run_sweep", "save_history", "search_grad", "search_vjp", "sgd_update", "shard_batch",
    "train_epochs",
    "train_step", "tree_norm", "value_and_autodiff_grad", "value_and_autodiff_grad_bf16",
    "value_and_manual_grad", "value_and_manual_grad_bf16", "with_compute_dtype",
}


def jaxnn_imports(path: Path):
    """(line, module, names) for every ``import jaxnn...`` / ``from jaxnn... import`` in a file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jaxnn":
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "jaxnn":
                    yield node.lineno, a.name, []


def modules():
    return sorted(p for p in ROOT.rglob("*.py") if p.parent != ROOT)


def test_every_module_lives_in_a_wing():
    loose = sorted(p.name for p in ROOT.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert not loose, f"move these into a wing (core, check, train, devices, datasets, cli): {loose}"
    assert {p.parent.name for p in modules()} == set(ALLOWED)


@pytest.mark.parametrize("path", modules(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_imports_follow_the_wing_rules(path):
    wing = path.parent.name
    bad = []
    for line, module, names in jaxnn_imports(path):
        if wing == "cli" and module in CLI_FACES:
            continue
        if not module.startswith(ALLOWED[wing]):
            bad.append(f"line {line}: {module}")
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        if private and not module.startswith(f"jaxnn.{wing}."):
            bad.append(f"line {line}: private {private} from {module}")
    assert not bad, f"jaxnn/{wing}/{path.name} imports outside what {wing} may use {ALLOWED[wing]}: {bad}"


def test_the_wing_faces_hold_no_logic():
    # a wing's __init__.py is a docstring and re-exports: no function or class of its own
    for init in ROOT.glob("*/__init__.py"):
        tree = ast.parse(init.read_text())
        defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defs, f"{init.relative_to(ROOT.parent)} defines {defs}: move them into a module"


def test_the_public_names_are_those_promised():
    assert set(jaxnn.__all__) - {"activations", "losses"} == PUBLIC
    assert sorted(jaxnn.__all__) == jaxnn.__all__, "keep __all__ sorted"
    for name in jaxnn.__all__:
        assert hasattr(jaxnn, name), name
    # the documented module paths of the public face
    assert jaxnn.activations.relu and jaxnn.losses.bce and jaxnn.checkpoint.save
    assert jaxnn.distributed.initialize and jaxnn.datasets.load and jaxnn.check.check_vjp
