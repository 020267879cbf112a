"""Test-wide settings.

XLA's backend optimisation level 0 roughly halves compile time of the many small
jitted functions the tests build; results are unchanged (the tests compare
values, never speed). Set before jax is imported; a user's XLA_FLAGS wins.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
