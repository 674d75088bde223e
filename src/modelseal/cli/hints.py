"""Hints that name this command line's own commands and options.

The Python API's errors say what to do in words any caller can act on; the CLI replaces that
hint, where it knows a better one, by the command or option that does it (keyed by what the
error is about, its ``topic``, or by its stable ``code``).
"""

from __future__ import annotations

from modelseal.errors import ModelsealError

BY_TOPIC = {
    "models": "see 'modelseal models list'",
    "users": "see 'modelseal user list'",
    "tokens": "see 'modelseal user list --json'",
    "trusted-keys": "see 'modelseal registry trust list'",
    "push-encryption": "push with --kek URI",
    "directory-v1": (
        "if you trust where it was kept, decrypt it once with --allow-v1-format and "
        "'modelseal encrypt' it again"
    ),
    "pull-encryption": "pull with --kek URI (the key-encryption key it was pushed with)",
    "serve-encryption": "serve with --kek URI (the key-encryption key it was pushed with)",
    "gate-keys": "trust the gate's key with 'modelseal registry trust add KEY --purpose gate'",
    "push-scan": "run 'modelseal scan' on the model to see each finding",
    "max-file-bytes": "ask the registry's admin to raise max_file_bytes (MODELSEAL_MAX_FILE_BYTES)",
    "server-url": "check --server and that the server is running",
    "server-token": "set MODELSEAL_TOKEN or pass --token-file",
    # signing and hashing
    "certificate-chain-without-leaf": "pass the leaf certificate too (--certificate)",
    "nothing-to-sign": "check the model path and the --ignore patterns",
    "leaf-certificate-alone": (
        "give the signing (leaf) certificate alone; the rest go to --certificate-chain"
    ),
    "verify-with-trust-anchor": "verify it with --trust-anchor CA.pem",
    "sigstore-not-keyless": "verify it with --trust-anchor CA.pem",
    "verify-sigstore-alone": "give --trusted-root without --public-key or --trust-anchor",
    "verify-with-public-key": "verify it with --public-key KEY.pub",
    "verify-with-public-key-alone": "verify it with --public-key alone",
    "untrusted-chain": "pass the issuing CA with --trust-anchor, or do not trust this signer",
    "signature-path": "check the --signature path",
    "signature-file": "point --signature at the bundle file",
    "oms-signer": "sign the model with 'modelseal sign' or 'model_signing sign'",
    "new-key-passphrase": "give a passphrase or use --no-passphrase",
    "key-passphrase": "set MODELSEAL_PASSPHRASE, pass --passphrase-file, or run in a terminal",
    "symlinks": "pass --allow-symlinks to include links that stay inside the model",
    "unhashable": "remove it from the model or ignore it with --ignore",
    "shard-size": "use a positive size (e.g. --shard-size 256MiB)",
    "duplicate-tensor-names": "fingerprint the files one by one, or use --ignore-names",
    # scanning and restricted loading
    "forbidden-global": (
        "run 'modelseal scan' on the file to see what it imports; "
        "allow the global (--allow) only if you trust it"
    ),
}


def cli_hint(error: ModelsealError) -> str:
    """The hint to print for ``error`` on the command line."""
    topic = error.topic
    if topic.startswith("versions:"):
        return f"see 'modelseal versions list {topic.partition(':')[2]} --all'"
    if topic.startswith("quarantine:"):
        _, name, number = topic.split(":", 2)
        return (
            f"see 'modelseal versions scan-report {name}:{number}'; a security engineer "
            f"releases it with 'modelseal versions release {name} {number} --reason ...'"
        )
    if topic.startswith("gate:"):
        _, name, number = topic.split(":", 2)
        return (
            f"run 'modelseal gate {name}:{number} --policy POLICY --attest OUT' and "
            f"'modelseal attest attach {name}:{number} OUT' first"
        )
    if topic.startswith("aliases:"):
        return f"see 'modelseal alias list {topic.partition(':')[2]}'"
    return BY_TOPIC.get(topic, error.hint)


# The longest message the CLI prints (a hostile argument is quoted in it: keep the line a line).
MAX_MESSAGE = 500


def one_line(error: ModelsealError) -> str:
    """The single line the CLI prints for ``error`` (after ``modelseal: error:``)."""
    hint = cli_hint(error)
    message = error.message
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 20] + " … " + message[-17:]
    return f"{message}; {hint}" if hint else message


# Optional packages and the extra that installs each (a command that needs one says so).
EXTRA_OF_MODULE = {
    "pydantic": "gate",
    "yaml": "gate",
    "cel": "gate",
    "pyarrow": "gate",
    "sqlalchemy": "registry",
    "alembic": "registry",
    "fastapi": "registry",
    "uvicorn": "registry",
    "httpx": "registry",
    "psycopg": "registry",
    "fsspec": "registry",
    "s3fs": "registry",
    "argon2": "crypto",
    "pkcs11": "crypto",
    "boto3": "crypto",
    "numpy": "numpy",
    "torch": "torch",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "sklearn": "sklearn",
    "joblib": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "keras": "keras",
    "sigstore": "sigstore",
    "prometheus_client": "serve",
}


def missing_package(error: ModuleNotFoundError) -> str | None:
    """The line for a command that needs an optional package that is not installed (``None``
    if the missing module is not one of modelseal's optional packages: then it is a bug)."""
    top = (error.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return f"this command needs the {top} package; install it: pip install 'modelseal[{extra}]'"
