"""``docs/configuration.md`` names every environment variable the code reads.

The names come from the settings models (each field of ``DominusSettings`` and ``LocalSettings``, under every
name it is read by) and from the literal ``DOMINUS_*`` names in the packages, the example app, the scripts, the
benchmarks and the tests.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from dominus_fastapi import DominusSettings
from dominus_local.settings import LocalSettings

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"
SOURCES = ("dominus_fastapi", "dominus_local", "dominus", "example_app", "benchmarks", "scripts", "tests")
NAME = re.compile(r"\bDOMINUS_[A-Z0-9_]*[A-Z0-9]\b")


def documented() -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", PAGE.read_text(encoding="utf-8")))


def settings_names() -> set[str]:
    names: set[str] = set()
    for model, prefix in ((DominusSettings, ""), (LocalSettings, "DOMINUS_LOCAL_")):
        for field_name, info in model.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(choice for choice in alias.choices if isinstance(choice, str))
            else:
                names.add(f"{prefix}{field_name.upper()}")
    return names


def literal_names() -> set[str]:
    names: set[str] = set()
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and (path.suffix in (".py", ".sh") or path.parent.name == "scripts"):
                names.update(NAME.findall(path.read_text(encoding="utf-8", errors="replace")))
    return names


def test_every_setting_of_the_settings_models_is_documented() -> None:
    names = settings_names()
    assert len(names) > 50
    assert names - documented() == set()


def test_every_variable_named_in_the_code_is_documented() -> None:
    names = literal_names()
    assert {"DOMINUS_TOKEN", "DOMINUS_LOCAL_DEMO_ADMIN_PASSWORD", "DOMINUS_TEST_POSTGRES_URL"} <= names
    assert names - documented() == set()
