"""Tests run in float64 with strict dtype promotion and rank promotion errors."""

import gc

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Free each test module's compiled programs when the module ends.

    Every XLA CPU executable keeps a few memory mappings of JIT code until it is freed. The suite
    compiles thousands of programs in one process; without this it reached 61,801 mappings, 94 % of
    Linux's default limit of 65,530 (`vm.max_map_count`), past which XLA segfaults inside compilation
    (a change that added one loop per record crashed the suite there, 78 % into the run)."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
