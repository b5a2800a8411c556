"""Established effect estimators, on the same :class:`~cina.base.EffectEstimator` contract as
:class:`~cina.CInA`, so that benchmarks compare like for like.

=====================  ==============  ==========================================================
class                  method_name     what it is
=====================  ==============  ==========================================================
NaiveDifference        ``naive``       difference in means (Welch se); uniform weights per arm
IPW                    ``ipw``         Hajek IPW, logistic propensity (C=1, clip 0.01)
AIPW                   ``aipw``        doubly robust, 5-fold cross-fitted HistGradientBoosting
DML                    ``dml``         DoubleML-style IRM, 5-fold cross-fitted random forests
TLearner               ``tlearner``    per-arm HistGradientBoosting plug-in (no se by default)
EntropyBalancing       ``entropy``     Hainmueller's entropy balancing of the covariate means
=====================  ==============  ==========================================================

Every class takes ``estimand="ate"`` (or ``"att"``) and ``random_state=0``. Weighting methods
(naive, ipw, entropy) return weights that sum to 1 within each arm.
"""

from .aipw import AIPW
from .dml import DML
from .entropy import EntropyBalancing
from .ipw import IPW
from .naive import NaiveDifference
from .tlearner import TLearner

__all__ = ["NaiveDifference", "IPW", "AIPW", "DML", "TLearner", "EntropyBalancing"]
