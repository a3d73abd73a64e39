"""Argument checks at every entry point (jaxnn.core.validate, issue 20 items 7-8).

Each bad input is refused with a ValueError naming the argument and the fix, before
anything long runs; nested Python lists are converted to the same result as arrays.
One tiny problem (n_x = 2, m = 4) for everything, so each entry point compiles once.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn.cli import gradcheck as cli_gradcheck
from jaxnn.core.network import check_X
from jaxnn.core.validate import check_learning_rate
from jaxnn.core.validate_data import as_array, as_batch, check_real

NET = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
PARAMS = jaxnn.init_params(jax.random.key(0), NET)
X = jnp.array([[0.5, -1.0, 2.0, 0.0], [1.0, 0.25, -0.5, 1.5]])
Y = jnp.array([[1.0, 0.0, 1.0, 0.0]])
KEY = jax.random.key(1)
STEP = jaxnn.make_train_step(NET, 0.1)


def _fit(X, Y, **kw):
    return jaxnn.fit(PARAMS, NET, (X, Y), epochs=1, key=KEY, progress=False, **kw)[0]


def _train_epochs(X, Y):
    state = jaxnn.init_state(PARAMS, KEY, learning_rate=0.1)
    return jaxnn.train_epochs(state, NET, (X, Y), epochs=1, progress=False)[0].params


# every entry point that takes X (and Y): name -> f(X, Y)
ENTRY = {
    "forward": lambda X, Y: jaxnn.forward(PARAMS, X, NET)[0],
    "cost": lambda X, Y: jaxnn.cost(PARAMS, X, Y, NET),
    "value_and_manual_grad": lambda X, Y: jaxnn.value_and_manual_grad(PARAMS, X, Y, NET),
    "value_and_autodiff_grad": lambda X, Y: jaxnn.value_and_autodiff_grad(PARAMS, X, Y, NET),
    "per_example_grads": lambda X, Y: jaxnn.per_example_grads(PARAMS, X, Y, NET),
    "train_step": lambda X, Y: STEP(PARAMS, X, Y),
    "fit": _fit,
    "train_epochs": _train_epochs,
    "check_gradients": lambda X, Y: jaxnn.check_gradients(PARAMS, X, Y, NET),
}
# backward takes Y (X arrives inside the cache); forward takes no Y
Y_ENTRY = {k: f for k, f in ENTRY.items() if k != "forward"}
Y_ENTRY["backward"] = lambda X, Y: jaxnn.backward(PARAMS, jaxnn.forward(PARAMS, X, NET)[1], Y, NET)

OBJECT_X = np.array([[0.5, None, 2.0, 0.0], [1.0, 0.25, -0.5, 1.5]], dtype=object)
BAD_X = {
    "complex": (X.astype(jnp.complex64), r"X has dtype complex64: .* drop the imaginary part\. "
                                         r"Pass X\.real"),
    "datetime64": (np.ones((2, 4), "datetime64[D]"), r"X has dtype datetime64\[D\] \(dates or "
                                                     r"durations\).*np\.timedelta64\(1, 'D'\)"),
    "timedelta64": (np.ones((2, 4), "timedelta64[s]"), r"X has dtype timedelta64\[s\]"),
    "object": (OBJECT_X, r"X is an array of Python objects \(dtype object, e\.g\. None at \(0, 1\)\)"
                         r".*np\.asarray\(X, dtype=float\)"),
    "strings": (np.full((2, 4), "1.5"), r"X must hold numbers, not strings \(dtype <U3, e\.g\. "
                                        r"'1\.5' at \(0, 0\)\); .*np\.asarray\(X, dtype=float\)"),
    "ragged list": ([[0.5, 1.0, 2.0, 0.0], [1.0, 0.25]], r"X could not be read as an array of "
                                                        r"numbers .*same number of entries"),
    "1-D": (jnp.ones(4), r"X must be 2-D \(n_x, m\) = \(2, m\).*got shape \(4,\)\. For a single "
                         r"example use X\[:, None\]"),
    "transposed": (X.T, r"X has shape \(4, 2\) but the Network expects \(n_x, m\) with n_x = 2\. "
                        r"It looks like \(m, n_x\).*pass X\.T\."),
}


@pytest.mark.parametrize("case", BAD_X)
@pytest.mark.parametrize("entry", ENTRY)
def test_bad_X_is_refused_naming_X_and_the_fix(entry, case):
    bad, match = BAD_X[case]
    with pytest.raises(ValueError, match=match):
        ENTRY[entry](bad, Y)


BAD_Y = {
    "complex": (Y.astype(jnp.complex64), r"Y has dtype complex64: .*Pass Y\.real"),
    "datetime64": (np.ones((1, 4), "datetime64[s]"), r"Y has dtype datetime64\[s\]"),
    "object": (np.array([[1.0, 0.0, "a", 0.0]], dtype=object),
               r"Y is an array of Python objects \(dtype object, e\.g\. 'a' at \(0, 2\)\)"),
}


@pytest.mark.parametrize("case", BAD_Y)
@pytest.mark.parametrize("entry", Y_ENTRY)
def test_bad_Y_is_refused_naming_Y_and_the_fix(entry, case):
    bad, match = BAD_Y[case]
    with pytest.raises(ValueError, match=match):
        Y_ENTRY[entry](X, bad)


def _same(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y) for x, y in zip(la, lb))


@pytest.mark.parametrize("entry", [e for e in Y_ENTRY if e != "check_gradients"])
def test_nested_lists_give_the_same_result_as_arrays(entry):
    f = Y_ENTRY[entry]
    from_lists = f(X.tolist(), Y.tolist())
    assert _same(from_lists, f(X, Y))


def test_nested_list_converted_in_the_params_dtype(x64):
    params = jax.tree.map(lambda p: p.astype(jnp.float64), PARAMS)
    X64 = [[0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0]]  # 0.1 is not a float32
    AL = jaxnn.forward(params, X64, NET)[0]
    assert AL.dtype == jnp.float64
    assert _same(AL, jaxnn.forward(params, jnp.asarray(X64, jnp.float64), NET)[0])


def test_a_list_inside_a_compiled_function():
    # under jax.jit a nested list arrives as a list of scalar tracers: the core functions stack
    # it; a bare shape check (what a step calls before converting) refuses it with the fix
    f = jax.jit(lambda X, Y: jaxnn.value_and_manual_grad(PARAMS, X, Y, NET))
    assert _same(f(X.tolist(), Y.tolist()), f(X, Y))
    with pytest.raises(ValueError, match=r"X is a Python list; pass an array: X = jnp\.asarray\(X"):
        jax.jit(lambda X: check_X(X, NET))(X.tolist())


def test_as_batch_for_a_compiled_step():
    Xb, Yb = as_batch(X.tolist(), Y.tolist(), NET, PARAMS)
    assert _same((Xb, Yb), (X, Y))
    assert as_batch(X, Y, NET)[0] is X  # arrays pass untouched: nothing added to the hot path
    with pytest.raises(ValueError, match=r"X has shape \(4, 2\).*pass X\.T"):
        as_batch(X.T, Y, NET)  # X is checked before Y, whose expected m comes from X
    with pytest.raises(ValueError, match="X has dtype complex64"):
        as_batch(X.astype(jnp.complex64), Y, NET)


def test_as_array_keeps_arrays_and_converts_lists():
    assert as_array("X", X) is X
    a = np.ones((2, 4), np.float32)
    assert as_array("X", a) is a
    assert as_array("X", [[1, 2]]).dtype == jnp.float32
    assert as_array("X", [[True, False]]).dtype == jnp.float32  # bools in data are 0/1


@pytest.mark.parametrize("bad, match", [
    (0, r"key = 0 is not a PRNG key: pass key=jax\.random\.key\(0\) \(jax\.random\.key\(seed\)"),
    (None, r"key = None is not a PRNG key: .*jax\.random\.key\(seed\)"),
    (jnp.ones(3), r"key has dtype float32 and shape \(3,\), not a PRNG key: .*jax\.random\.key"),
])
def test_init_params_refuses_a_non_key(bad, match):
    with pytest.raises(ValueError, match=match):
        jaxnn.init_params(bad, NET)


def test_init_params_legacy_key_gives_the_same_params():
    assert _same(jaxnn.init_params(jax.random.PRNGKey(0), NET), PARAMS)


def test_dropout_key_is_checked():
    with pytest.raises(ValueError, match=r"key = 0 is not a PRNG key: .*jax\.random\.key\(seed\)"):
        jaxnn.forward(PARAMS, X, NET, key=0, keep_prob=0.5)


@pytest.mark.parametrize("optimizer, rate, shown", [
    (None, 1e-50, r"1e-50 rounds to 0\.0"),
    ("adam", 1e-46, r"1e-46 rounds to 0\.0"),
    ("sgd", 1e-40, r"1e-40 rounds to 9\.99\d*e-41"),  # a subnormal float32
])
@pytest.mark.parametrize("entry", ["fit", "init_state"])
def test_learning_rate_that_vanishes_in_the_params_dtype(entry, optimizer, rate, shown):
    match = (rf"learning_rate = {shown} in float32 \(the params' dtype\), below its smallest "
             r"normal number 1\.18e-38: .*Pass a learning_rate >= 1\.18e-38")
    with pytest.raises(ValueError, match=match):
        if entry == "fit":
            _fit(X, Y, optimizer=optimizer, learning_rate=rate)
        else:
            jaxnn.init_state(PARAMS, KEY, optimizer=optimizer, learning_rate=rate)


def test_learning_rate_rounding_per_dtype_and_ensemble():
    check_learning_rate(1e-30, dtype=jnp.float32)  # small but normal: allowed
    check_learning_rate(1e-50, dtype=jnp.float64)  # fine where it is representable
    with pytest.raises(ValueError, match=r"learning_rate = 1e-39 rounds to .* in bfloat16"):
        check_learning_rate(1e-39, dtype=jnp.bfloat16)
    with pytest.raises(ValueError, match=r"learning_rate = 1e-50 rounds to 0\.0 in float32"):
        check_learning_rate(np.array([0.1, 1e-50]), ensemble=True, dtype=jnp.float32)


@pytest.mark.parametrize("rate, match", [
    (None, r"learning_rate = None; pass α, a finite number > 0, e\.g\. learning_rate=0\.1"),
    ("abc", r"learning_rate = 'abc' must be a finite number > 0, e\.g\. 0\.1"),
    (np.True_, r"learning_rate has dtype bool; it must be a real number"),
    (jnp.array(True), r"learning_rate has dtype bool"),
    (1e-3 + 1j, r"learning_rate has dtype complex128: .*learning_rate\.real"),
])
def test_check_learning_rate_names_the_argument(rate, match):
    with pytest.raises(ValueError, match=match):
        check_learning_rate(rate)


@pytest.mark.parametrize("rate, match", [
    ("abc", r"learning_rate = 'abc' must be a finite number > 0"),
    (np.True_, r"learning_rate has dtype bool"),
])
def test_make_train_step_answers_about_learning_rate(rate, match):
    with pytest.raises(ValueError, match=match):
        jaxnn.make_train_step(NET, learning_rate=rate)


def test_fit_refuses_a_bool_learning_rate():
    with pytest.raises(ValueError, match=r"learning_rate has dtype bool; .*hides a mistake"):
        _fit(X, Y, learning_rate=np.True_)


@pytest.mark.parametrize("call, match", [
    (lambda: jaxnn.cost(PARAMS, X, Y, NET, l2=np.True_), r"l2 = (np\.)?True(_)? must be a finite"),
    (lambda: jaxnn.cost(PARAMS, X, Y, NET, l2=0.1j), r"l2 = 0\.1j must be a finite number >= 0"),
    (lambda: jaxnn.forward(PARAMS, X, NET, key=KEY, keep_prob=jnp.array(True)),
     r"keep_prob = .* must be a number in \(0, 1\]"),
])
def test_bool_and_complex_hyperparameters_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_check_real_accepts_real_dtypes():
    for dtype in (jnp.float32, jnp.bfloat16, jnp.int8, jnp.uint32, jnp.bool_):
        check_real("X", jnp.ones(2, dtype))
    with pytest.raises(ValueError, match="w has dtype bool"):
        check_real("w", np.ones(2, bool), bool_ok=False)
    with pytest.raises(ValueError, match="X is a PRNG key"):
        check_real("X", KEY)


def test_gradcheck_seed_flag_is_named(capsys):
    parser = argparse.ArgumentParser(prog="jaxnn gradcheck")
    cli_gradcheck.add_arguments(parser)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--seed", "-1"])
    assert exit_info.value.code == 2
    assert "argument --seed: expected a non-negative integer" in capsys.readouterr().err


def test_make_train_step_refuses_a_learning_rate_that_vanishes_in_the_params_dtype():
    step = jaxnn.make_train_step(NET, 1e-50)  # the dtype is known when the params arrive
    with pytest.raises(ValueError, match=r"learning_rate = 1e-50 rounds to 0\.0 in float32"):
        step(PARAMS, X, Y)
