"""A model of CPython's C unpickler (``Modules/_pickle.c``) that executes nothing.

This package only *interprets*: it walks the opcode stream exactly as ``pickle.load`` would
(object stack plus mark stack, memo, PROTO, FRAME, globals, calls, BUILD, extension codes,
persistent ids) and pushes symbolic values instead of objects. What the real unpickler would
import, call or modify is reported as events (the ``on_*`` methods of
:class:`~modelseal.scanning.unpickler.machine.Machine`); judging those events -- allow-list,
severity, findings -- is :mod:`modelseal.scanning.pickle_vm`'s job.

* :mod:`.values` -- the symbolic values, resource limits and the unpickler's own errors;
* :mod:`.machine` -- state, reading, stack primitives, events, and the data opcodes;
* :mod:`.opcodes` -- the structural opcodes (containers, memo, globals, calls) and the table;
* :mod:`.fast` -- the quick pass over common data opcodes, equal in effect to the table.
"""
