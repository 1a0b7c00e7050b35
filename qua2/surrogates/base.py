"""The common shape of every surrogate: a scikit-learn regressor on choice matrices.

Surrogates follow the scikit-learn estimator contract — hyper-parameters (including the
:class:`~qua2.surrogates.encoding.ConfigEncoder`) are set in ``__init__`` and stored
unchanged, ``fit(x, y)`` returns ``self``, learned attributes end in ``_``, randomness comes
from ``random_state`` — so ``sklearn.base.clone`` and model-selection tools work. ``x`` is a
choice matrix ``[N, L]``; predictions are in the target's units.

Persistence never pickles: :meth:`Surrogate.save` writes ``surrogate.json`` (kind,
hyper-parameters, encoder, target, learned scalars) next to a model file in the surrogate's own
format (XGBoost JSON, safetensors, or nothing for ridge); :func:`load_surrogate` reads any kind
back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from threadpoolctl import threadpool_limits

from qua2.errors import Qua2Error
from qua2.io import DamagedArtifactError, read_json_object
from qua2.specs import QuantConfig
from qua2.surrogates.encoding import ConfigEncoder
from qua2.surrogates.registry import get_surrogate

SURROGATE_FILE = "surrogate.json"
FORMAT_VERSION = 1


class Surrogate(RegressorMixin, BaseEstimator):
    """Base class: target scaling, config helpers and JSON persistence."""

    kind: ClassVar[str] = ""
    #: hyper-parameters that are data, saved by the model itself rather than as JSON params
    data_params: ClassVar[tuple[str, ...]] = ("encoder",)
    encoder: ConfigEncoder | None

    # ------------------------------------------------------------------ contract
    def fit(self, x: np.ndarray, y: np.ndarray) -> Surrogate:
        x = self._check_x(x)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(y) != len(x):
            raise Qua2Error(f"{len(x)} configurations but {len(y)} target values.")
        if len(y) < 2:
            raise Qua2Error("a surrogate needs at least two evaluated configurations.")
        # Scaled targets make one set of default hyper-parameters work for FID (~10–300),
        # objectives with a bits penalty (~−1000) and PSNR alike.
        self.y_mean_ = float(y.mean())
        self.y_scale_ = float(y.std()) or 1.0
        self.n_features_in_ = x.shape[1]
        # One BLAS thread: the matrices are small, and a multi-threaded BLAS on a busy,
        # shared CPU was 3× slower (and much slower on its first call) than one thread.
        with threadpool_limits(limits=1):
            self._fit_scaled(x, (y - self.y_mean_) / self.y_scale_)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if not hasattr(self, "y_mean_"):
            raise Qua2Error(f"this {type(self).__name__} is not fitted yet; call fit first.")
        with threadpool_limits(limits=1):
            scaled = self._predict_scaled(self._check_x(x))
        return scaled * self.y_scale_ + self.y_mean_

    def predict_configs(self, configs: Iterable[QuantConfig]) -> np.ndarray:
        """Predictions for configurations (QuantConfig or their dict form)."""
        return self.predict(self.checked_encoder().choices(configs))

    # ------------------------------------------------------------------ subclass hooks
    def _fit_scaled(self, x: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict_scaled(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        """JSON-ready learned values besides the model file."""
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`_state`."""

    def _save_model(self, directory: Path) -> None:
        """Write the model file(s) into ``directory``."""

    def _load_model(self, directory: Path) -> None:
        """Read the model file(s) written by :meth:`_save_model`."""

    # ------------------------------------------------------------------ helpers
    def checked_encoder(self) -> ConfigEncoder:
        """The encoder of the study's layers and options (one clear error when missing)."""
        if self.encoder is None:
            raise Qua2Error(f"{type(self).__name__} needs encoder= (a ConfigEncoder built from "
                            "the study's layers and options).")
        return self.encoder

    def _check_x(self, x: np.ndarray) -> np.ndarray:
        return self.checked_encoder().check(x)

    # ------------------------------------------------------------------ persistence
    def hyper_params(self) -> dict[str, Any]:
        """``get_params()`` without the data parameters (what JSON and fingerprints hold)."""
        return {k: v for k, v in self.get_params(deep=False).items()
                if k not in self.data_params}

    def full_state(self) -> dict[str, Any]:
        """The learned values saved as JSON: target scaling and :meth:`_state`."""
        return {"y_mean_": self.y_mean_, "y_scale_": self.y_scale_,
                "n_features_in_": self.n_features_in_, **self._state()}

    def set_full_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`full_state`."""
        self.y_mean_, self.y_scale_ = state["y_mean_"], state["y_scale_"]
        self.n_features_in_ = state["n_features_in_"]
        self._set_state(state)

    def save(self, directory: str | Path, target: dict[str, Any] | None = None) -> Path:
        """Write the fitted surrogate into ``directory`` (created); returns it."""
        if not hasattr(self, "y_mean_"):
            raise Qua2Error("only a fitted surrogate can be saved.")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"version": FORMAT_VERSION, "kind": self.kind, "params": self.hyper_params(),
                   "encoder": self.checked_encoder().to_dict(), "target": target,
                   "state": self.full_state()}
        self._save_model(directory)
        (directory / SURROGATE_FILE).write_text(json.dumps(payload, indent=1))
        return directory


def load_surrogate(directory: str | Path) -> Surrogate:
    """A surrogate saved by :meth:`Surrogate.save`, of any kind."""
    directory = Path(directory)
    path = directory / SURROGATE_FILE
    if not path.is_file():
        raise Qua2Error(f"{directory} holds no saved surrogate ({SURROGATE_FILE} missing); "
                        "run `qua2 fit` first.")
    fix = f"refit it with `qua2 fit {directory.parent.parent} --force`"
    payload = read_json_object(path, fix)
    if payload.get("version") != FORMAT_VERSION:
        raise Qua2Error(f"{path} has surrogate format {payload.get('version')!r}; refit with "
                        "this qua2 (`qua2 fit`).")
    try:
        cls = get_surrogate(payload["kind"]).load_class()
        model = cls(encoder=ConfigEncoder.from_dict(payload["encoder"]), **payload["params"])
        model.set_full_state(payload["state"])
        model._load_model(directory)
    except DamagedArtifactError:
        raise
    except Exception:  # xgboost/safetensors/JSON each raise their own types on damaged files
        raise DamagedArtifactError(directory, "its files do not load", fix) from None
    model.target_ = payload.get("target")
    return model
