"""Native code inside a model: shared libraries and executables (ELF, Mach-O, PE).

A model never needs machine code to be loaded as data; when it ships some, a custom-op loader
(``tf.load_op_library``, ``torch.ops.load_library``, onnxruntime's ``register_custom_ops_library``,
a ``LoadLibrary`` op) runs it with the process's rights. Nothing in it can be judged without
running it, so it is always a finding, whatever the file is called.
"""

from __future__ import annotations

from typing import BinaryIO

from modelseal.scanning import rules
from modelseal.scanning.context import Context
from modelseal.scanning.report import Location, Severity
from modelseal.scanning.sniff import native_kind


def scan_native(
    ctx: Context, stream: BinaryIO, size: int | None, location: Location, depth: int
) -> None:
    """Report native machine code (ELF, Mach-O, PE): it cannot be judged unrun."""
    kind = native_kind(stream.read(4096)) or "native"
    ctx.saw("native-code")
    ctx.find(
        rules.NATIVE_LIBRARY,
        Severity.HIGH,
        location.at(0),
        f"{kind} binary",
        "machine code inside a model: a custom-op loader would run it with the process's "
        "rights, and it cannot be judged without running it",
    )
