"""Plain scikit-learn, XGBoost, LightGBM and NumPy models, saved the usual ways, scan clean and
load with the built-in allow-list; every built-in entry is an inert class; patterns work."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import io
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelseal
from modelseal.errors import (
    AllowlistError,
    ForbiddenGlobalError,
    UnsafeModelError,
    UnsafePickleError,
)
from modelseal.loading import safe_loads
from modelseal.loading.pickles import load_pickle
from modelseal.scanning.allowlist import DEFAULT_GLOBALS, Allowlist
from modelseal.scanning.allowlist_frameworks import FRAMEWORK_GLOBALS

sklearn = pytest.importorskip("sklearn")
joblib = pytest.importorskip("joblib")

Run = Callable[..., tuple[int, str, str]]


@dataclasses.dataclass
class Custom:
    """A user's own class: not on the built-in list."""

    value: int


CUSTOM = f"{Custom.__module__}.Custom"


def _data() -> tuple[Any, Any, Any]:
    rng = np.random.RandomState(0)
    x = rng.rand(60, 4)
    return x, (x[:, 0] > 0.5).astype(int), x[:, 1]


def _models() -> dict[str, Callable[[], Any]]:
    from sklearn.cluster import DBSCAN, KMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import (
        AdaBoostClassifier,
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        IsolationForest,
        RandomForestClassifier,
    )
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Lasso, LogisticRegression, Ridge, SGDClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
    from sklearn.svm import SVC, SVR
    from sklearn.tree import DecisionTreeClassifier

    x, y, yr = _data()
    mixed = np.empty((60, 3), dtype=object)
    mixed[:, 0], mixed[:, 1] = x[:, 0], x[:, 1]
    mixed[:, 2] = np.random.RandomState(1).choice(["a", "b", "c"], 60)
    docs = ["apple bee", "bee cat", "cat dog", "dog apple"] * 3
    column = ColumnTransformer(
        [("num", StandardScaler(), [0, 1]), ("cat", OneHotEncoder(handle_unknown="ignore"), [2])]
    )
    return {
        "random-forest": lambda: RandomForestClassifier(5, random_state=0).fit(x, y),
        "extra-trees": lambda: ExtraTreesClassifier(3, random_state=0).fit(x, y),
        "gradient-boosting": lambda: GradientBoostingClassifier(n_estimators=5).fit(x, y),
        "gb-regressor": lambda: GradientBoostingRegressor(n_estimators=3).fit(x, yr),
        "hist-gb": lambda: HistGradientBoostingClassifier(max_iter=5).fit(x, y),
        "adaboost": lambda: AdaBoostClassifier(n_estimators=3).fit(x, y),
        "isolation-forest": lambda: IsolationForest(n_estimators=3, random_state=0).fit(x),
        "scaler-logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y),
        "column-transformer": lambda: Pipeline([("ct", column), ("m", LogisticRegression())]).fit(
            mixed, y
        ),
        "impute-tree": lambda: make_pipeline(
            SimpleImputer(), MinMaxScaler(), DecisionTreeClassifier()
        ).fit(x, y),
        "tfidf": lambda: make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(
            docs, [0, 1] * 6
        ),
        "svc": lambda: SVC().fit(x, y),
        "svr": lambda: SVR().fit(x, yr),
        "kmeans": lambda: KMeans(3, n_init=1, random_state=0).fit(x),
        "dbscan": lambda: DBSCAN().fit(x),
        "pca": lambda: PCA(2).fit(x),
        "knn": lambda: KNeighborsClassifier().fit(x, y),
        "naive-bayes": lambda: GaussianNB().fit(x, y),
        "ridge": lambda: Ridge().fit(x, yr),
        "lasso": lambda: Lasso().fit(x, yr),
        "sgd": lambda: SGDClassifier(random_state=0).fit(x, y),
        "mlp": lambda: MLPClassifier((4,), max_iter=20, random_state=0).fit(x, y),
    }


def _boosters() -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {}
    x, y, _ = _data()
    try:
        import xgboost as xgb
    except ImportError:
        pass
    else:
        out["xgb-classifier"] = lambda: xgb.XGBClassifier(n_estimators=3).fit(x, y)
        out["xgb-booster"] = lambda: xgb.train({}, xgb.DMatrix(x, label=y), 3)
    try:
        import lightgbm as lgb
    except ImportError:
        pass
    else:
        out["lgbm-classifier"] = lambda: lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, y)
        out["lgbm-booster"] = lambda: lgb.train({"verbose": -1}, lgb.Dataset(x, label=y), 3)
    out["numpy-rng"] = lambda: {"rng": np.random.default_rng(0), "rs": np.random.RandomState(0)}
    out["numpy-scalars"] = lambda: {"f": np.float64(1.5), "i": np.int64(2), "t": np.float32}
    return out


_ALL = {**_models(), **_boosters()}


@functools.cache
def _fitted(name: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _ALL[name]()


def _save(model: Any, how: str) -> bytes:
    if how.startswith("pickle"):
        return pickle.dumps(model, protocol=int(how[-1]))
    buf = io.BytesIO()
    joblib.dump(model, buf, compress=3 if how == "joblib-zlib" else 0)
    return buf.getvalue()


def _predict(model: Any) -> Any:
    x, _, _ = _data()
    for method in ("predict", "transform", "score_samples"):
        if hasattr(model, method):
            try:
                return getattr(model, method)(x if "tfidf" not in repr(model).lower() else ["a"])
            except Exception:
                continue
    return None


@pytest.mark.parametrize("how", ["pickle2", "pickle4", "pickle5", "joblib", "joblib-zlib"])
@pytest.mark.parametrize("name", sorted(_ALL))
def test_usual_models_scan_clean_and_load_without_flags(name: str, how: str) -> None:
    model = _fitted(name)
    data = _save(model, how)
    report = _scan(data)
    assert report.status == "clean", [f.subject for f in report.findings]
    loaded, _ = load_pickle("model", bytearray(data), Allowlist())
    assert type(loaded) is type(model)
    expected = _predict(model)
    if expected is not None and not isinstance(model, dict):
        np.testing.assert_array_equal(np.asarray(_predict(loaded)), np.asarray(expected))


def _scan(data: bytes) -> Any:
    from modelseal.scanning.engine import Options, scan_bytes

    return scan_bytes(data, Options(), name="model.bin")


def test_a_signed_random_forest_loads_with_no_options(
    tmp_path: Path, key_pair: tuple[Path, Path], run_cli: Run
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    x, y, _ = _data()
    model = RandomForestClassifier(5, random_state=0).fit(x, y)
    path = tmp_path / "forest.joblib"
    joblib.dump(model, path)
    sig = tmp_path / "forest.sig"
    modelseal.sign(path, private_key=key_pair[0], signature=sig)
    loaded = modelseal.load(path, signature=sig, public_key=key_pair[1])
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    code, out, _ = run_cli("load-check", path, "--signature", sig, "--public-key", key_pair[1])
    assert code == 0 and "joblib" in out
    assert run_cli("scan", path)[0] == 0


def test_every_built_in_entry_is_an_inert_class_defined_where_it_is_named() -> None:
    """No module, no function that runs code; classes are defined under the listed name."""
    reconstructors = {"newObj", "__pyx_unpickle_SeedSequence"}
    missing = []
    for module, name in sorted(FRAMEWORK_GLOBALS):
        top = module.split(".")[0]
        if importlib.util.find_spec(top) is None:
            continue
        try:
            obj: Any = importlib.import_module(module)
            for part in name.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError):
            missing.append(f"{module}.{name}")
            continue
        if name in reconstructors:
            assert callable(obj)
            continue
        assert isinstance(obj, type), f"{module}.{name} is not a class"
        if module != "numpy":  # numpy's scalar types live in numpy._core but are named numpy.X
            assert (obj.__module__, obj.__qualname__) == (module, name), f"{module}.{name}"
    assert not missing, f"built-in entries that do not exist: {missing}"


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("numpy.testing._private.utils", "runstring"),
        ("numpy", "load"),
        ("numpy", "memmap"),
        ("numpy.lib.npyio", "load"),
        ("sklearn.utils._testing", "assert_run_python_script_without_output"),
        ("sklearn.utils", "_safe_indexing"),
        ("sklearn.experimental.enable_iterative_imputer", "IterativeImputer"),
        ("sklearn.metrics._dist_metrics", "PyFuncDistance64"),
        ("torch.storage", "_load_from_bytes"),
        ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
        ("lightgbm.basic", "_TempFile"),
        ("xgboost.core", "DMatrix"),
    ],
)
def test_gadgets_in_framework_packages_stay_off_the_list(module: str, name: str) -> None:
    assert not Allowlist().allows(module, name)
    with pytest.raises(ForbiddenGlobalError):
        safe_loads(b"\x80\x04c" + module.encode() + b"\n" + name.encode() + b"\n.")


def test_patterns_work_as_documented() -> None:
    base = Allowlist()
    assert not base.allows("mypkg.models", "Net")
    everything = base.extended(["sklearn.*"])
    assert everything.match("sklearn.linear_model._logistic", "LogisticRegression") == "exact"
    assert everything.match("sklearn.utils._testing", "TempMemmap") == "class"
    sub = base.extended(["mypkg.models.*"])
    assert sub.match("mypkg.models.vision", "Net") == "class"
    assert sub.match("mypkg.models", "Net") == "class"
    assert not sub.allows("mypkg.other", "Net")
    assert not sub.allows("mypkg.models", "__reduce__")
    assert not sub.allows("mypkg.models", "Net.load")
    suffix = base.extended(["mypkg.models.*Net"])
    assert suffix.allows("mypkg.models.a", "ResNet") and not suffix.allows("mypkg.models", "Head")
    one = base.extended(["mypkg.models:*"])
    assert one.allows("mypkg.models", "Net") and not one.allows("mypkg.models.vision", "Net")
    for bad in ("*", "*.models", "mypkg.mo dels.*"):
        with pytest.raises(AllowlistError):
            base.extended([bad])


def test_a_pattern_loads_only_classes(tmp_path: Path) -> None:
    """``sklearn.utils.*`` names sklearn.utils._testing functions too: they never resolve."""
    allow = Allowlist().extended(["sklearn.utils.*"])
    blob = b"\x80\x04csklearn.utils._testing\nassert_run_python_script_without_output\n."
    with pytest.raises(UnsafePickleError, match="only classes"):
        safe_loads(blob, allowlist=allow)


def test_scanner_and_loader_agree_on_one_list() -> None:
    """The scanner's allow-list is the loader's: every default global is allowed by both."""
    from modelseal.scanning.engine import Options

    assert Options().allowlist == Allowlist()
    assert FRAMEWORK_GLOBALS <= DEFAULT_GLOBALS


def test_a_user_class_needs_an_allow_and_the_refusal_names_it(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y, _ = _data()
    model = {"clf": LogisticRegression().fit(x, y), "custom": Custom(3)}
    path = tmp_path / "custom.pkl"
    path.write_bytes(pickle.dumps(model))
    sig = tmp_path / "custom.sig"
    modelseal.sign(path, private_key=key_pair[0], signature=sig)
    with pytest.raises(UnsafeModelError) as err:
        modelseal.load(path, signature=sig, public_key=key_pair[1])
    assert f"{CUSTOM}" in err.value.hint and "allow=" in err.value.hint
    pattern = ["tests.loading.*"]
    loaded = modelseal.load(path, signature=sig, public_key=key_pair[1], allow=pattern)
    assert loaded["custom"] == Custom(3)
    config = tmp_path / "allow.toml"
    config.write_text(f'[scan]\nallow = ["{CUSTOM}"]\n')
    loaded = modelseal.load(path, signature=sig, public_key=key_pair[1], allow_config=config)
    assert loaded["custom"] == Custom(3)


def test_load_check_takes_an_allow_config(
    tmp_path: Path, key_pair: tuple[Path, Path], run_cli: Run
) -> None:
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(Custom(1)))
    sig = tmp_path / "p.sig"
    modelseal.sign(path, private_key=key_pair[0], signature=sig)
    args = ["load-check", path, "--signature", sig, "--public-key", key_pair[1]]
    code, _, err = run_cli(*args)
    assert code == 1 and f"--allow {CUSTOM}" in err
    config = tmp_path / "allow.toml"
    config.write_text(f'[scan]\nallow = ["{CUSTOM}"]\n')
    assert run_cli(*args, "--allow-config", config)[0] == 0
    assert run_cli(*args, "--allow", "tests.loading.test_frameworks.*")[0] == 0
    code, _, err = run_cli(*args, "--allow-config", tmp_path / "missing.toml")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_scan_takes_the_same_patterns(tmp_path: Path, run_cli: Run) -> None:
    """``modelseal scan --allow 'pkg.*'`` was a silent no-op; now it allows the classes."""
    path = tmp_path / "c.pkl"
    path.write_bytes(pickle.dumps(Custom(2)))
    assert run_cli("scan", path)[0] == 1
    package = CUSTOM.split(".")[0]
    assert run_cli("scan", path, "--allow", f"{package}.*")[0] == 0
    assert run_cli("scan", path, "--allow", "sklearn.*")[0] == 1
