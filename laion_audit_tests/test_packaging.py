"""Every subpackage is listed in pyproject (the explicit list exists for the lexical_data mapping)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "laion_audit").rglob("__init__.py")
        if "__pycache__" not in path.parts
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_shipped_data_is_importable():
    import importlib.resources

    assert importlib.resources.files("laion_audit.deployments").joinpath("dagster.local.yaml").is_file()
