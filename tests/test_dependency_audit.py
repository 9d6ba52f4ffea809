"""The dependency gate (.ci/audit.py): pip-audit over the installed packages fails the build on a
known vulnerability, also offline against the local advisory snapshot."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AUDIT = ROOT / ".ci" / "audit.py"


@pytest.fixture(scope="module")
def audit():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("beacon_ci_audit", AUDIT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(package: str, *events: dict[str, str], vid: str = "BEACON-TEST-1") -> dict:  # type: ignore[type-arg]
    return {"schema_version": "1.6.0", "id": vid, "summary": "test advisory",
            "affected": [{"package": {"name": package, "ecosystem": "PyPI"},
                          "ranges": [{"type": "ECOSYSTEM", "events": list(events)}]}]}


def test_a_version_inside_a_range_is_affected(audit):
    """introduced <= version < fixed, in every range; "0" means from the first release; no fix means still open."""
    record = _record("flask", {"introduced": "0"}, {"fixed": "2.2.5"}, {"introduced": "2.3.0"}, {"fixed": "2.3.2"})
    assert audit.affects(record, "flask", "2.2.4") and audit.affects(record, "flask", "2.3.1")
    assert not audit.affects(record, "flask", "2.2.5") and not audit.affects(record, "flask", "3.1.3")
    assert not audit.affects(record, "werkzeug", "2.2.4")
    assert audit.affects(_record("flask", {"introduced": "3.0.0"}), "flask", "3.1.3")


def test_the_snapshot_is_valid_osv_and_names_real_packages(audit):
    """Every shipped record parses, has an id and at least one fixed version."""
    snapshot = audit.load_snapshot(ROOT / ".ci" / "advisories")
    assert {"bleach", "flask", "werkzeug", "jinja2"} <= set(snapshot)
    for records in snapshot.values():
        for record in records:
            assert record["id"] and any("fixed" in e for a in record["affected"] for r in a["ranges"]
                                        for e in r["events"])


def test_the_audit_passes_on_the_installed_packages_offline():
    """The installed packages are newer than every advisory in the snapshot."""
    run = subprocess.run([sys.executable, str(AUDIT), "--offline"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "OFFLINE" in run.stdout and "0 known vulnerabilities, 0 not audited" in run.stdout


def test_a_known_vulnerability_in_an_installed_package_fails_the_build(tmp_path):
    """An advisory covering the installed Flask makes the audit exit 1 and name it (how to see the gate fail)."""
    installed = metadata.version("flask")
    (tmp_path / "flask.json").write_text(json.dumps([_record("Flask", {"introduced": "0"},
                                                             {"fixed": installed + ".post1"}, vid="BEACON-TEST-42")]))
    run = subprocess.run([sys.executable, str(AUDIT), "--offline", "--advisories", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"VULNERABLE flask {installed}: BEACON-TEST-42" in run.stdout
