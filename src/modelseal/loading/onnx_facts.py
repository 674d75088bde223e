"""What an ONNX model holds, read from its bytes without building the model: the top-level
initializers and their parameter count, and every tensor that keeps its data outside the file.

Parsing a large model with the ``onnx`` package copies every weight into a new message while
holding the interpreter lock (seconds for a GiB, during which a server answers nothing); this
walk skips tensor payloads in place and costs microseconds per tensor. It follows the ONNX
schema (``onnx.proto``) to every place a tensor can sit: graph initializers (dense and sparse),
node attributes (tensors, sparse tensors, subgraphs), functions and training graphs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, BinaryIO, cast

from modelseal.memio import ViewReader
from modelseal.scanning.formats.protoreader import BadMessage, Reader
from modelseal.scanning.source import Source

Visitor = Callable[[int, int, int], bool]
LENGTH = 2  # the wire type of messages, strings and packed fields
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


@dataclasses.dataclass
class OnnxFacts:
    """Counts of the main graph's initializers and parameters; tensors stored elsewhere."""

    initializers: int = 0
    parameters: int = 0
    external: list[str] = dataclasses.field(default_factory=list)


def onnx_facts(data: Any) -> OnnxFacts:
    """Walk the ONNX ``ModelProto`` in ``data`` (any buffer); :class:`BadMessage` if it is not
    one."""
    stream = cast(BinaryIO, ViewReader(data))  # a seekable binary reader over the buffer
    reader = Reader(Source(stream, size=len(memoryview(data).cast("B"))))
    facts = OnnxFacts()
    walk = _Walk(reader, facts)
    walk.run()
    facts.external = [t.name or "(unnamed)" for t in walk.outside]
    return facts


class _Walk:
    def __init__(self, reader: Reader, facts: OnnxFacts) -> None:
        self.r, self.facts = reader, facts
        self.outside: list[_Tensor] = []  # tensors with external data (named once read)

    def run(self) -> None:
        def model(field: int, wire: int, n: int) -> bool:
            if wire != LENGTH:
                return False
            if field == 7:  # graph: the main graph, whose initializers are counted
                return self.r.sub(n, 0, self.graph(1, main=True))
            if field == 25:  # functions
                return self.r.sub(n, 0, self.function(1))
            if field == 20:  # training_info: initialization and algorithm graphs
                return self.r.sub(n, 0, self.graphs_at((1, 2), 1))
            return False

        self.r.fields(None, 0, model)

    def graph(self, depth: int, *, main: bool = False) -> Visitor:
        def on(field: int, wire: int, n: int) -> bool:
            if wire != LENGTH:
                return False
            if field == 1:  # node
                return self.r.sub(n, depth, self.node(depth + 1))
            if field == 5:  # initializer
                tensor = _Tensor()
                self.r.sub(n, depth, self.tensor(tensor))
                if main:
                    self.facts.initializers += 1
                    self.facts.parameters += tensor.count()
                return True
            if field == 15:  # sparse_initializer
                return self.r.sub(n, depth, self.sparse(depth + 1))
            return False

        return on

    def graphs_at(self, fields: tuple[int, ...], depth: int) -> Visitor:
        def on(field: int, wire: int, n: int) -> bool:
            if wire == LENGTH and field in fields:
                return self.r.sub(n, depth, self.graph(depth + 1))
            return False

        return on

    def function(self, depth: int) -> Visitor:
        def on(field: int, wire: int, n: int) -> bool:
            if wire == LENGTH and field == 7:  # node
                return self.r.sub(n, depth, self.node(depth + 1))
            if wire == LENGTH and field == 11:  # attribute_proto: defaults, tensors included
                return self.r.sub(n, depth, self.attribute(depth + 1))
            return False

        return on

    def node(self, depth: int) -> Visitor:
        def on(field: int, wire: int, n: int) -> bool:
            if wire == LENGTH and field == 5:  # attribute
                return self.r.sub(n, depth, self.attribute(depth + 1))
            return False

        return on

    def attribute(self, depth: int) -> Visitor:
        def on(field: int, wire: int, n: int) -> bool:
            if wire != LENGTH:
                return False
            if field in (5, 10):  # t, tensors
                return self.r.sub(n, depth, self.tensor(_Tensor()))
            if field in (6, 11):  # g, graphs
                return self.r.sub(n, depth, self.graph(depth + 1))
            if field in (22, 23):  # sparse_tensor, sparse_tensors
                return self.r.sub(n, depth, self.sparse(depth + 1))
            return False

        return on

    def sparse(self, depth: int) -> Visitor:
        def on(field: int, wire: int, n: int) -> bool:
            if wire == LENGTH and field in (1, 2):  # values, indices
                return self.r.sub(n, depth, self.tensor(_Tensor()))
            return False

        return on

    def tensor(self, tensor: _Tensor) -> Visitor:
        r = self.r

        def on(field: int, wire: int, n: int) -> bool:
            if field == 1 and wire == 0:  # dims, one by one
                tensor.dims.append(n)
                return True
            if field == 1 and wire == LENGTH:  # dims, packed
                end = r.src.tell() + n
                while r.src.tell() < end:
                    tensor.dims.append(r.varint())
                return True
            if field == 8 and wire == LENGTH:  # name
                tensor.name = r.text(n)
                return True
            if field == 14 and wire == 0 and n == EXTERNAL:  # data_location
                self._external(tensor)
                return True
            if field == 13 and wire == LENGTH:  # external_data (key/value entries)
                self._external(tensor)
                return False  # skipped: where the data is does not matter, only that it is
            return False

        return on

    def _external(self, tensor: _Tensor) -> None:
        if not tensor.external:
            tensor.external = True
            self.outside.append(tensor)


@dataclasses.dataclass
class _Tensor:
    dims: list[int] = dataclasses.field(default_factory=list)
    name: str = ""
    external: bool = False

    def count(self) -> int:
        total = 1
        for dim in self.dims:
            total *= dim
        return total


__all__ = ["BadMessage", "OnnxFacts", "onnx_facts"]
