"""The backup of ``docs/server/operations.md`` on the defaults, done as written: while the server runs, each
SQLite database copied with SQLite's online backup, then the key files and the blobs; restored into an empty
data directory with private modes. The restored server has the secrets, rows, open SQL data, files and signing
key of the original."""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from dominus_fastapi import Dominus
from dominus_local.cli import main
from tests.conftest import make_fast

DATABASES = ("dominus", "userdata", "open")
KEY_FILES = ("signing_key.pem", "psk", "warden.key", "archivist-url.key")


def _online_backup(source: Path, target: Path) -> None:
    """``sqlite3 source ".backup 'target'"`` as the page writes it; Python's binding of the same online backup
    API where the command-line shell is not installed."""
    if shutil.which("sqlite3"):
        subprocess.run(["sqlite3", str(source), f".backup '{target}'"], check=True, timeout=60)
        return
    with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
        live.backup(copy)


def _backup(data_dir: Path, backup: Path) -> None:
    backup.mkdir()
    for name in DATABASES:
        if (data_dir / f"{name}.db").exists():
            _online_backup(data_dir / f"{name}.db", backup / f"{name}.db")
    for name in KEY_FILES:
        if (data_dir / name).exists():
            shutil.copy2(data_dir / name, backup / name)
    shutil.copytree(data_dir / "blobs", backup / "blobs")


def _restore(backup: Path, data_dir: Path) -> None:
    shutil.copytree(backup, data_dir)
    os.chmod(data_dir, 0o700)
    for path in data_dir.rglob("*"):
        os.chmod(path, 0o700 if path.is_dir() else 0o600)


def _kid(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["info", "--data-dir", str(data_dir)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("signing key id")]
    assert len(lines) == 1
    return lines[0]


async def test_an_online_backup_restores_every_kind_of_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DOMINUS_LOCAL_DATABASE_URL", "DOMINUS_LOCAL_CACHE_URL", "DOMINUS_LOCAL_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)  # the run on real backends would point the server elsewhere
    monkeypatch.setenv("DOMINUS_LOCAL_BCRYPT_ROUNDS", "4")
    psk = secrets.token_hex(32)
    original_dir, backup_dir, restored_dir = tmp_path / "data", tmp_path / "backup", tmp_path / "restored"
    original = Dominus(base_url=f"embedded://{original_dir}", token=psk)
    make_fast(original)
    try:
        await original.secrets.upsert("smtp_password", "s3cret")
        await original.ddl.create_table(
            "public", "notes", [{"name": "id", "type": "serial", "primary_key": True}, {"name": "body", "type": "text"}]
        )
        await original.db.insert("notes", {"body": "kept"})
        await original.open.execute("CREATE TABLE visits (page TEXT)")
        await original.open.execute("INSERT INTO visits VALUES ($1)", ["/home"])
        stored = await original.files.upload(b"report bytes", "report.txt", category="docs")
        # While it runs, as the page says.
        _backup(original_dir, backup_dir)
    finally:
        await original.aclose()
    assert sorted(p.name for p in backup_dir.iterdir() if p.suffix == ".db") == [f"{n}.db" for n in sorted(DATABASES)]

    _restore(backup_dir, restored_dir)
    restored = Dominus(base_url=f"embedded://{restored_dir}", token=psk)
    make_fast(restored)
    try:
        assert await restored.secrets.get("smtp_password") == "s3cret"  # warden.key came along
        assert [row["body"] for row in (await restored.db.query("notes"))["rows"]] == ["kept"]
        assert (await restored.open.execute("SELECT page FROM visits"))["rows"] == [{"page": "/home"}]
        fetched = await restored.files.fetch(stored["id"])
        assert fetched["data"] == b"report bytes" and fetched["path"] == "report.txt"
    finally:
        await restored.aclose()
    assert _kid(restored_dir, capsys) == _kid(original_dir, capsys)  # tokens in circulation still verify
