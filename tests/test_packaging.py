"""The installed distribution's metadata tells the truth (issue 12): one
version, the Python versions the C API needs, the license file, the
free-threading classifier.  Read from the installed metadata, so it holds
for the wheel, the sdist and editable installs alike."""
from __future__ import annotations

import importlib.metadata as md
import sys

import pyconc


def _meta() -> md.PackageMetadata:
    return md.metadata("pyconc")


def test_installed_version_is_pyconc___version___the_single_source() -> None:
    assert md.version("pyconc") == pyconc.__version__


def test_requires_python_starts_at_3_11_where_the_binding_compiles() -> None:
    # 3.10 lacks PyType_GetModuleByDef, which the binding's module state needs
    assert _meta()["Requires-Python"] == ">=3.11"
    assert sys.version_info >= (3, 11)


def test_classifiers_name_every_supported_python_and_free_threading() -> None:
    classifiers = set(_meta().get_all("Classifier") or [])
    for minor in (11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Programming Language :: Python :: 3.10" not in classifiers
    assert any(c.startswith("Programming Language :: Python :: Free Threading :: ")
               for c in classifiers)


def test_license_is_mit_and_the_license_file_ships_with_the_distribution() -> None:
    meta = _meta()
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in (meta.get_all("License-File") or [])
