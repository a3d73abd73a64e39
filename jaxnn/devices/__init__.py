"""Where arrays live: meshes, placement over devices and processes, multi-process runs.

Modules: ``mesh`` (make_mesh, shardings, padded batches), ``global_arrays`` (arrays over several
processes), ``place`` (fit's placement of state and data), ``processes`` (``jax.distributed``
start-up, barriers, settings compared across processes; public as ``jaxnn.distributed``) and
``fingerprint`` (what is compared). Imports only ``jaxnn.core``. The public names are
re-exported by ``jaxnn``.
"""
