"""The formulas (docs/formulas.md §1-§5) and what they need; imports nothing else of jaxnn.

Modules: ``network`` (the Network description and its shape checks), ``activations`` (§2),
``losses`` (§3), ``initializers``, ``forward`` (§1, the cost of §3), ``backward`` (§4),
``update`` (§5 gradient descent, once), ``custom_vjp``, ``per_example``, ``precision`` (the one
mixed-precision wrapper), ``tree`` (the one relative error), ``validate`` (argument checks),
``deprecation`` (the one way a name is retired) and ``compat`` (the APIs that moved between
the jax releases jaxnn supports).
The public names are re-exported by ``jaxnn``.
"""
