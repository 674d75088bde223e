"""Rules of configuration files that make loaders run code or read files (Keras configs beyond
Lambda layers, Hugging Face remote code, Hydra/NeMo targets, YAML tags), and of expansion
bombs in configuration files (YAML aliases, XML entities, nesting)."""

from __future__ import annotations

from modelseal.scanning.report import Severity
from modelseal.scanning.rules.rule import Rule

KERAS_UNSAFE_API = Rule(
    "keras.unsafe-api",
    Severity.CRITICAL,
    "a Keras config reaches a Keras API that downloads, loads or turns safe_mode off",
    "Keras's own non-modelling functions named in a config run while the model is rebuilt, "
    "even with safe_mode: keras.utils.get_file downloads and extracts anywhere, load_model and "
    "enable_unsafe_deserialization disable safe_mode for what follows, TorchModuleWrapper runs "
    "torch.load on bytes from the file.",
    "Do not load the model; rebuild it from code you control, on Keras 3.11 or later.",
    lowest=Severity.MEDIUM,
    cwe=(502, 73),
    cve=("CVE-2025-8747", "CVE-2025-9906"),
)
KERAS_FILE_REFERENCE = Rule(
    "keras.file-reference",
    Severity.HIGH,
    "a Keras layer config names a file or URL read at load time",
    "Preprocessing layers and tokenizers (StringLookup, IntegerLookup, TextVectorization, "
    "BPE and SentencePiece tokenizers) read a vocabulary path from their config while the "
    "model loads, even with safe_mode: local files end up in the model, URLs are fetched.",
    "Do not load the model; vocabularies belong inline or in the archive's assets.",
    cwe=(73, 918),
    cve=("CVE-2025-12058",),
)
HF_AUTO_MAP = Rule(
    "hf.auto-map",
    Severity.HIGH,
    "a Hugging Face config maps a class to Python code shipped with the model",
    "auto_map (and custom pipelines) name modules that from_pretrained imports and runs when "
    "trust_remote_code is set: the model directory's .py files run with the loader's rights.",
    "Read the named .py files (and scan them) before loading with trust_remote_code.",
    cwe=(94,),
)
HF_REMOTE_CODE_REPO = Rule(
    "hf.remote-code-repo",
    Severity.CRITICAL,
    "a Hugging Face config runs code from another repository",
    "An auto_map entry of the form other/repo--module.Class makes from_pretrained download "
    "Python from a different repository and run it: code this scan never sees.",
    "Do not load with trust_remote_code; pin and review the other repository's code first.",
    cwe=(94, 829),
)
HF_TRUST_REMOTE_CODE = Rule(
    "hf.trust-remote-code",
    Severity.HIGH,
    "a config asks the loader to trust remote code",
    "trust_remote_code: true makes the loader import and run Python shipped with, or fetched "
    "for, the model.",
    "Remove the flag, or review the code it enables before loading.",
    cwe=(94,),
)
HF_CUSTOM_PIPELINE = Rule(
    "hf.custom-pipeline",
    Severity.HIGH,
    "a Hugging Face config names a custom pipeline implementation",
    "custom_pipelines and a diffusers model_index.json _class_name given as [module, class] "
    "make the pipeline loader import Python from the model directory.",
    "Review the pipeline's .py file before loading with trust_remote_code.",
    cwe=(94,),
)
HF_SENTENCE_TRANSFORMERS_MODULE = Rule(
    "hf.sentence-transformers-module",
    Severity.CRITICAL,
    "a sentence-transformers modules.json imports a module outside the library",
    "SentenceTransformer imports the type of every module listed in modules.json and calls "
    "it with files from the model directory.",
    "Do not load the model unless the named module is one you trust.",
    lowest=Severity.HIGH,
    cwe=(94, 502),
)
HF_DIFFUSERS_COMPONENT = Rule(
    "hf.diffusers-component",
    Severity.CRITICAL,
    "a diffusers model_index.json loads a component from an unknown library",
    "DiffusionPipeline imports each component's library and calls its from_pretrained; a "
    "library other than diffusers or transformers is arbitrary code.",
    "Do not load the pipeline unless the named library is one you trust.",
    lowest=Severity.HIGH,
    cwe=(94, 502),
)
HYDRA_TARGET = Rule(
    "hydra.target",
    Severity.CRITICAL,
    "a Hydra/NeMo config instantiates a target outside the known model libraries",
    "hydra.utils.instantiate (NeMo restores .nemo archives through it) imports the dotted "
    "_target_ and calls it with the config's arguments: os.system or any importable callable.",
    "Do not restore the model; review every _target_ of its model_config.yaml.",
    lowest=Severity.MEDIUM,
    cwe=(94, 502),
    cve=("CVE-2025-23304",),
)
YAML_PYTHON_TAG = Rule(
    "yaml.python-tag",
    Severity.CRITICAL,
    "a YAML document carries a python/object, python/name or python/module tag",
    "yaml.load with the default, full or unsafe loader imports the tagged name and, for "
    "object/apply and object/new, calls it with the document's arguments.",
    "Load YAML with yaml.safe_load only; do not load this file.",
    lowest=Severity.MEDIUM,
    cwe=(502,),
    cve=("CVE-2017-18342", "CVE-2020-1747", "CVE-2020-14343"),
)
YAML_UNPARSED_PYTHON_TAG = Rule(
    "yaml.unparsed-python-tag",
    Severity.HIGH,
    "a python tag in a YAML stream that does not parse",
    "A loader acts on the documents of a stream before the one that breaks, and other YAML "
    "readers accept what PyYAML refuses: the tag may still be constructed.",
    "Do not load the file; find out why it does not parse.",
    cwe=(502,),
)
YAML_ALIAS_BOMB = Rule(
    "yaml.alias-bomb",
    Severity.HIGH,
    "YAML anchors and aliases expand exponentially",
    "A billion-laughs document: loaders that copy aliased nodes (OmegaConf, Hydra, a JSON "
    "export) build an exponentially large tree and exhaust memory and time.",
    "Do not load the file.",
    cwe=(776,),
)
XML_ENTITY_EXPANSION = Rule(
    "xml.entity-expansion",
    Severity.HIGH,
    "XML entities expand exponentially or recursively",
    "A billion-laughs document: parsers that expand internal entities exhaust memory and time.",
    "Do not parse the file with entity expansion; do not load it.",
    cwe=(776,),
)
XML_EXTERNAL_ENTITY = Rule(
    "xml.external-entity",
    Severity.HIGH,
    "an XML document declares an external entity",
    "Parsers that resolve SYSTEM or PUBLIC entities read local files or fetch URLs into the "
    "document (XXE).",
    "Parse with external entities disabled; do not load the file.",
    cwe=(611,),
)
CONFIG_NESTING = Rule(
    "config.nesting",
    Severity.MEDIUM,
    "a configuration document nests too deeply",
    "JSON or YAML nested thousands of levels deep exhausts the recursion of parsers and of the "
    "code that walks the result: the loader fails or crashes.",
    "Do not load the file.",
    cwe=(674,),
)
SAVEDMODEL_ASSET_PATH = Rule(
    "savedmodel.asset-path",
    Severity.HIGH,
    "a SavedModel asset points outside the model directory",
    "Assets are read by path when the SavedModel loads: an absolute or climbing path reads an "
    "arbitrary file into the model.",
    "Do not load the model; re-export it with its assets inside.",
    cwe=(22, 73),
)
