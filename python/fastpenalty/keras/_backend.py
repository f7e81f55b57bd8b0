"""Importing Keras for fastpenalty.keras, with a clear message where Keras cannot start.

Keras 3 picks its backend once, when it is first imported: KERAS_BACKEND, else the "backend" of
~/.keras/keras.json, else TensorFlow. Without TensorFlow installed and with nothing chosen,
`import keras` fails with "No module named 'tensorflow'"; this says what to do instead.
"""

import importlib.util
import os

_BACKENDS = ("torch", "jax", "numpy")  # the backends fastpenalty.keras has kernels for


def import_keras():
    try:
        import keras
    except ModuleNotFoundError as exc:
        if exc.name != "tensorflow" or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
            raise
        installed = [b for b in _BACKENDS if b == "numpy" or importlib.util.find_spec(b) is not None]
        raise ImportError(
            "fastpenalty.keras: Keras 3 was started on its default backend, TensorFlow, which is "
            "not installed. Choose a backend before Keras is first imported: set the environment "
            "variable KERAS_BACKEND to one installed here ("
            + ", ".join(installed)
            + "), e.g. `KERAS_BACKEND=torch python train.py`, or in Python "
            "`os.environ['KERAS_BACKEND'] = 'torch'` before `import keras` (or set \"backend\" "
            "in ~/.keras/keras.json)."
        ) from None
    return keras
