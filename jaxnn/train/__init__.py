"""Training: one step builder, the epoch loop, fit, state, metrics, history, checkpoints.

Modules: ``step`` (the one train step), ``optimizers``, ``state`` (TrainState), ``metrics``,
``epoch`` (the compiled epoch loop and the data order), ``divergence``, ``training`` (``fit``,
``fit_ensemble``, ``train_epochs``), ``history``, ``checkpoint`` and ``checkpoint_format``.
Imports ``jaxnn.core`` and ``jaxnn.devices``, never ``jaxnn.check``. The public names are
re-exported by ``jaxnn``.
"""
