"""One scanner per format, and the table that maps each recognised format to its scanner.

Every format module imports :mod:`modelseal.scanning.context` (never the engine) and exposes a
:data:`~modelseal.scanning.context.Scanner`. :data:`SCANNERS` is what the engine hands to each
:class:`~modelseal.scanning.context.Context`; a new format is one entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from modelseal.scanning.context import Scanner
from modelseal.scanning.formats.compressed import scan_compressed
from modelseal.scanning.formats.gguf import scan_gguf
from modelseal.scanning.formats.hdf5 import scan_hdf5
from modelseal.scanning.formats.jsondoc import scan_json
from modelseal.scanning.formats.lightgbm import scan_lightgbm
from modelseal.scanning.formats.native import scan_native
from modelseal.scanning.formats.npy import scan_npy
from modelseal.scanning.formats.pickles import scan_pickle_file, scan_unknown
from modelseal.scanning.formats.polyglot import scan_alternatives, scan_zip_views
from modelseal.scanning.formats.protobuf import scan_protobuf
from modelseal.scanning.formats.safetensors import scan_safetensors
from modelseal.scanning.formats.sevenzip import scan_7z
from modelseal.scanning.formats.tar import scan_tar
from modelseal.scanning.formats.textdoc import scan_text_file
from modelseal.scanning.formats.zip import scan_zip

SCANNERS: Mapping[str, Scanner] = MappingProxyType(
    {
        "pickle": scan_pickle_file,
        "unknown": scan_unknown,
        "zip": scan_zip,
        "gzip": scan_compressed,
        "bz2": scan_compressed,
        "xz": scan_compressed,
        "lzma": scan_compressed,
        "zlib-joblib": scan_compressed,
        "zlib": scan_compressed,
        "lz4": scan_compressed,
        "zstd": scan_compressed,
        "7z": scan_7z,
        "tar": scan_tar,
        # Not formats: other readings of any stream, and what other zip readers see.
        "alternatives": scan_alternatives,
        "zip-views": scan_zip_views,
        "npy": scan_npy,
        "hdf5": scan_hdf5,
        "gguf": scan_gguf,
        "safetensors": scan_safetensors,
        "protobuf": scan_protobuf,
        "lightgbm": scan_lightgbm,
        "native": scan_native,
        "json": scan_json,
        "text": scan_text_file,  # content of no binary format (YAML, XML)
    }
)
"""The scanner of each format name :func:`~modelseal.scanning.sniff.sniff` returns."""

__all__ = ["SCANNERS"]
