"""Error and warning hierarchy of cina.

Every problem with a user's input is a :class:`CInAValidationError`, which subclasses
``ValueError`` so that ``except ValueError`` keeps working. Messages say what was expected
and what was received, and name the column where there is one.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError


class CInAError(Exception):
    """Base class of every error raised on purpose by cina."""


class CInAValidationError(CInAError, ValueError):
    """The input data or a setting is not what the method needs."""


class DataFileError(CInAValidationError):
    """A data file is missing, unreadable, empty or of an unknown format."""


class NotFittedError(CInAError, _SklearnNotFittedError):
    """An estimator was used before ``fit``. Also scikit-learn's ``NotFittedError`` (and so a
    ``ValueError`` and an ``AttributeError``), so that ``except`` clauses written for either
    library catch it."""


class ConvergenceError(CInAError, RuntimeError):
    """An iterative solver did not reach its tolerance."""


class CheckpointError(CInAError, RuntimeError):
    """A model checkpoint is missing, corrupted or does not match the code."""


class MissingDependencyError(CInAError, ImportError):
    """An optional dependency (an extra of the ``cina`` package) is not installed; the message
    names the extra to install."""


class CInAWarning(UserWarning):
    """Base class of cina's warnings."""


class DataWarning(CInAWarning):
    """The data was changed on the way in (a constant covariate dropped, say)."""


class IdentifierColumnWarning(DataWarning):
    """A column that identifies rows (unique per row: an id, a running index, a saved pandas
    index such as ``Unnamed: 0``) was dropped from the covariates."""


class OutOfRangeWarning(CInAWarning):
    """The input lies outside what a pretrained model was trained for."""


class OverlapWarning(CInAWarning):
    """The arms barely overlap: any estimate leans on a few units."""
