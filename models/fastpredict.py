"""LightGBM prediction without the Python wrapper's per-call overhead.

``Booster.predict`` spends ~25 us per call in Python (argument checks, a new
inner predictor, size queries) before LightGBM evaluates a single tree; the
stream scores one event at a time, so that overhead was most of a score. This
calls the same public C API function the wrapper ends in,
``LGBM_BoosterPredictForMat`` (c_api.h), on the booster the wrapper loaded,
with the arguments prepared once. Results are identical to ``Booster.predict``
(tests/models/test_fastpredict.py checks this bit for bit). If the wrapper's
internals ever change shape, ``FastPredictor`` falls back to ``Booster.predict``.
"""

from __future__ import annotations

import ctypes
import logging

import lightgbm as lgb
import numpy as np

log = logging.getLogger(__name__)

_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_ROW_MAJOR = 1  # C_API_IS_ROW_MAJOR
PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL
PREDICT_RAW = 1  # C_API_PREDICT_RAW_SCORE


class FastPredictor:
    """``predict(X)`` for a loaded booster: one C call, single-threaded."""

    def __init__(self, booster: lgb.Booster, predict_type: int = PREDICT_NORMAL) -> None:
        self.booster = booster
        self.predict_type = predict_type
        self._params = ctypes.c_char_p(b"num_threads=1")
        self._out_len = ctypes.c_int64(0)
        self._one_out = np.empty(1, dtype=np.float64)
        try:
            from lightgbm.basic import _LIB

            # Our own function object (item access does not return the cached one the
            # wrapper uses), typed so that plain ints can be passed without wrappers.
            fn = _LIB["LGBM_BoosterPredictForMat"]
            fn.restype = ctypes.c_int
            fn.argtypes = [
                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int32,
                ctypes.c_int32, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64), ctypes.c_void_p,
            ]  # fmt: skip
            self._handle = booster._handle
            if not isinstance(self._handle, ctypes.c_void_p) or not self._handle.value:
                raise AttributeError("booster handle")
            self._call = fn
        except (ImportError, AttributeError, TypeError) as exc:
            log.warning("LightGBM fast path unavailable (%s): using Booster.predict", exc)
            self._call = None

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for the rows of a float64 (n, k) array."""
        if self._call is None:
            return self._fallback(X)
        X = np.ascontiguousarray(X, dtype=np.float64)
        n = X.shape[0]
        out = self._one_out.copy() if n == 1 else np.empty(n, dtype=np.float64)
        ret = self._call(
            self._handle, X.ctypes.data, _DTYPE_FLOAT64, n, X.shape[1], _ROW_MAJOR,
            self.predict_type, 0, -1, self._params, self._out_len, out.ctypes.data,
        )  # fmt: skip
        if ret != 0 or self._out_len.value != n:
            return self._fallback(X)  # LightGBM's wrapper raises its own error message
        return out

    def _fallback(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, raw_score=self.predict_type == PREDICT_RAW)
