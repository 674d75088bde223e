"""Pickles are recognised by an opcode parse, not by their first byte (issue 15 item 8).

Both ways: text and random binary that merely start with an opcode byte are not pickles
(never "unscannable", never a finding unless the real unpickler would import something), and a
real pickle never slips to "unknown" or clean.
"""

from __future__ import annotations

import pickle
import pickletools
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.scanning.engine import Options, scan_bytes
from modelseal.scanning.sniff import pickle_verdict, sniff
from tests.scanning.scan_samples import call, p4, sg, su
from tests.scanning.unpickler_trace import trace

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    "text",
    [
        "torch>=2.1\nnumpy\nsafetensors==0.4.2\n",
        "transformers\nrequests>=2\n",
        "target: resnet50\nlr: 0.1\n",
        "tokenizer_class: BertTokenizer\n",
        "resnet50 weights, see README\n",
        "license: apache-2.0\n",
        "lora_r: 8\nlora_alpha: 16\n",
        "epochs: 3\n",
        "(optional) notes\n",
        "]\n",
        "}\n",
        "Version 2\nNotes\n",
        "s3://bucket/key\n",
        "eval results: 0.91\n",
    ],
)
def test_text_starting_with_an_opcode_byte_is_not_a_pickle(text: str) -> None:
    report = scan_bytes(text.encode(), Options())
    assert report.status == "clean", report.to_dict()
    assert "pickle" not in report.formats  # plain text, or a YAML config scanned as one


def _words(first: str) -> st.SearchStrategy[str]:
    rest = string.ascii_lowercase + string.digits + "_-."
    return st.builds(lambda a, b: a + b, st.sampled_from(first), st.text(rest, max_size=12))


_NAME = _words("tsrqpoljihgecbaTSRQPNLKJIGFC")  # every letter that is a pickle opcode
_REQUIREMENT = st.builds(
    lambda n, op, v: f"{n}{op}{v}",
    _NAME,
    st.sampled_from(["", ">=", "==", "~=", "<", "[cuda]>="]),
    st.sampled_from(["", "2.1", "0.4.2", "1.0.0rc1"]),
)
_YAML = st.builds(
    lambda k, v: f"{k}: {v}", _NAME, st.one_of(_NAME, st.integers().map(str), st.just(""))
)
_PROSE = st.lists(_NAME, min_size=1, max_size=8).map(" ".join)
_LINES = st.lists(st.one_of(_REQUIREMENT, _YAML, _PROSE), min_size=1, max_size=12)


def _imports(data: bytes) -> set[str]:
    """What the real C unpickler (with an inert find_class) would import, reading ``data``."""
    return {f"{e[1]}.{e[2]}" for e in trace(data, "buffered") if e[0] == "global"}


@_SETTINGS
@given(lines=_LINES, newline=st.sampled_from(["\n", "\r\n"]))
def test_config_and_requirement_text_is_never_unscannable(lines: list[str], newline: str) -> None:
    data = (newline.join(lines) + newline).encode()
    report = scan_bytes(data, Options())
    assert report.status != "unscannable", (data, report.to_dict())
    # A finding only when the real unpickler would really import that global from this text.
    reported = {f.subject for f in report.findings if f.rule == "pickle.global"}
    assert reported <= _imports(data), (data, reported)


def _opcodes_before_error(data: bytes) -> tuple[int, bool]:
    """Opcodes pickletools decodes before the data stops parsing (an independent count), and
    whether it stopped because the data ran out (not at an unknown opcode)."""
    count = 0
    try:
        for _ in pickletools.genops(data):
            count += 1
    except Exception as exc:
        return count, "unknown" not in str(exc)
    return count, False


@_SETTINGS
@given(
    first=st.sampled_from([b"\x80\x02", b"\x80\x04", b"s", b"K", b"(", b"c", b"\x80"]),
    tail=st.binary(min_size=0, max_size=300),
)
def test_random_binary_is_a_pickle_only_when_it_parses_as_one(first: bytes, tail: bytes) -> None:
    data = first + tail
    report = scan_bytes(data, Options())
    if "pickle" not in report.formats:
        assert report.status == "clean"
        # Nothing the real unpickler would import was missed.
        assert not _imports(data), data
        return
    # Called a pickle: the real unpickler imports something from it, or it parses as a
    # meaningful run of opcodes (pickletools agrees), or it is a pickle header cut short.
    count, cut_short = _opcodes_before_error(data)
    assert _imports(data) or count >= 2 or (data[:1] == b"\x80" and cut_short), data


_DATA = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        | st.tuples(inner, inner)
    ),
    max_leaves=12,
)


@_SETTINGS
@given(value=_DATA, protocol=st.integers(0, 5), junk=st.binary(max_size=8))
def test_a_real_pickle_never_slips_to_unknown(value: Any, protocol: int, junk: bytes) -> None:
    data = pickle.dumps(value, protocol=protocol)
    report = scan_bytes(data, Options())
    assert "pickle" in report.formats and report.status == "clean", (data, report.to_dict())
    assert pickle_verdict(data, len(data)) is True
    # With junk after STOP (torch and joblib read on): still a pickle, never clean-unknown,
    # unless it is a tiny pickle that could be text (protocol 0/1, under 8 opcodes: harmless).
    report = scan_bytes(data + junk, Options())
    ops = len(list(pickletools.genops(data)))
    if junk and (ops >= 8 or (protocol >= 2 and ops >= 3)):
        assert "pickle" in report.formats, (data + junk, report.to_dict())


@_SETTINGS
@given(command=st.text(string.ascii_letters, min_size=1, max_size=10), junk=st.binary(max_size=64))
def test_a_payload_pickle_is_found_whatever_follows(command: str, junk: bytes) -> None:
    data = p4(call(sg("os", "system"), su(command))) + junk
    report = scan_bytes(data, Options())
    assert "os.system" in {f.subject for f in report.findings}
    assert sniff(data[:4096], len(data)) == "pickle"
