"""Import TensorFlow, tf_keras and tensorflowjs the way this project installs them.

tf_keras (Keras 2) is used instead of Keras 3 because TF.js cannot load a Keras 3
export (docs/decisions/0002-tf-keras.md). tensorflowjs is installed with
`--no-deps`, so modules it imports at load time for converters we never use
(TF decision forests, TF Hub, JAX) may be missing: empty stand-ins are put into
`sys.modules` for this process only, never into site-packages.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from typing import Any

# Modules tensorflowjs imports eagerly but which the Keras-to-layers path never calls.
_STAND_INS = ("tensorflow_decision_forests", "tensorflow_hub")
_JAX_CONVERSION = "tensorflowjs.converters.jax_conversion"


def _configure_env() -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tf_keras() -> Any:
    """The tf_keras module (Keras 2 API), with TensorFlow's log noise turned down."""
    _configure_env()
    import tf_keras as keras

    return keras


def tensorflow() -> Any:
    _configure_env()
    import tensorflow as tf

    return tf


def _missing(name: str) -> bool:
    if name in sys.modules:
        return False
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def tensorflowjs() -> Any:
    """The tensorflowjs package, importable without its optional heavy dependencies."""
    _configure_env()
    for name in _STAND_INS:
        if _missing(name):
            sys.modules[name] = types.ModuleType(name)
    if _JAX_CONVERSION not in sys.modules and _missing("jax"):
        stand_in = types.ModuleType(_JAX_CONVERSION)

        def convert_jax(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("JAX conversion is not available in the trainer")

        stand_in.convert_jax = convert_jax  # type: ignore[attr-defined]
        sys.modules[_JAX_CONVERSION] = stand_in
    import tensorflowjs as tfjs

    return tfjs
