"""Rules of framework formats that can carry code: TorchScript, Keras, HDF5, TensorFlow,
ONNX, NumPy, native libraries."""

from __future__ import annotations

from modelseal.scanning.report import Severity
from modelseal.scanning.rules.rule import Rule

TORCHSCRIPT_OP = Rule(
    "torchscript.op",
    Severity.HIGH,
    "TorchScript code calls an op that reads or writes files, loads models or runs native code",
    "TorchScript code is compiled, not imported, but ops such as torch.load, file I/O and "
    "custom (native) operators run with the process's rights when the model is called.",
    "Review the TorchScript code (the archive's code/ directory) before running the model.",
    cwe=(94,),
)
KERAS_LAMBDA = Rule(
    "keras.lambda",
    Severity.CRITICAL,
    "a Keras Lambda layer carries Python code",
    "Lambda layers store marshalled Python bytecode; deserialising the model runs it "
    "(TFOpLambda layers name TensorFlow functions and rank high, not critical).",
    "Load the model with safe_mode=True (the Keras default) or rebuild the layer in code.",
    lowest=Severity.HIGH,
    cwe=(94, 502),
    cve=("CVE-2024-3660",),
)
KERAS_MODULE = Rule(
    "keras.module",
    Severity.CRITICAL,
    "a Keras config imports a module outside Keras",
    "A config entry's module is imported and the named object called while the model is "
    "rebuilt: any importable function runs with arguments from the config.",
    "Do not load the model unless you trust its origin and the module it names.",
    lowest=Severity.MEDIUM,
    cwe=(502,),
    cve=("CVE-2025-1550",),
)
KERAS_CUSTOM_OBJECT = Rule(
    "keras.custom-object",
    Severity.MEDIUM,
    "a Keras config names a custom registered object",
    "Loading needs the custom class registered in the loading process, and runs its code.",
    "Load it only with custom objects you wrote or reviewed.",
    cwe=(502,),
)
HDF5_EXTERNAL_LINK = Rule(
    "hdf5.external-link",
    Severity.HIGH,
    "an HDF5 file links to another file",
    "Reading the linked dataset opens another file named inside the model: data can be read "
    "from anywhere the loading process can reach.",
    "Do not load the model; re-save it with the data inline.",
    cwe=(73,),
)
HDF5_EXTERNAL_STORAGE = Rule(
    "hdf5.external-storage",
    Severity.HIGH,
    "an HDF5 dataset is stored in external raw files",
    "Reading the dataset reads the named external files, which can be any file the loading "
    "process can reach.",
    "Do not load the model; re-save it with the data inline.",
    cwe=(73,),
)
SAVEDMODEL_OP = Rule(
    "savedmodel.op",
    Severity.CRITICAL,
    "a TensorFlow graph uses an op that runs Python, native code or touches files",
    "Ops such as PyFunc and EagerPyFunc run Python, LoadLibrary-like ops run native code, and "
    "ReadFile/WriteFile/ImmutableConst read or write files when the model runs.",
    "Do not run the model unless you trust its origin; review the graph's ops first.",
    lowest=Severity.HIGH,
    cwe=(94,),
)
ONNX_PYTHON_OP = Rule(
    "onnx.python-op",
    Severity.CRITICAL,
    "an ONNX operator runs Python code",
    "The Python operators of onnxruntime-extensions run Python functions inside the runtime "
    "when the model runs.",
    "Do not run the model unless you trust its origin and the operator's code.",
    cwe=(94,),
)
ONNX_CUSTOM_DOMAIN = Rule(
    "onnx.custom-domain",
    Severity.MEDIUM,
    "an ONNX operator comes from an unknown custom domain",
    "Running the operator loads native code that some library registered for the domain.",
    "Run the model only with custom-op libraries you trust.",
    cwe=(829,),
)
ONNX_EXTERNAL_DATA = Rule(
    "onnx.external-data",
    Severity.HIGH,
    "an ONNX tensor's external data lies outside the model directory",
    "External-data paths that are absolute or climb out make the runtime read any file the "
    "process can reach as a tensor (a path traversal).",
    "Do not load the model; keep external data next to the model with relative paths.",
    cwe=(22,),
    cve=("CVE-2022-25882", "CVE-2024-27318"),
)
NPY_OBJECT_ARRAY = Rule(
    "npy.object-array",
    Severity.LOW,
    "a NumPy array holds Python objects",
    "Object arrays are stored as a pickle: loading needs allow_pickle=True, which runs that "
    "pickle (scanned and reported separately).",
    "Load plain arrays with allow_pickle=False; store object data in a safer format.",
    cwe=(502,),
)
NATIVE_LIBRARY = Rule(
    "native.library",
    Severity.HIGH,
    "a model file is native machine code (ELF, Mach-O or PE)",
    "Custom-op loaders (tf.load_op_library, torch.ops.load_library, onnxruntime custom-op "
    "libraries) run it with the process's rights, and it cannot be judged without running it.",
    "Load custom-op libraries only from sources you trust, built by you where you can.",
    cwe=(829,),
)
