#!/usr/bin/env python3
"""Dependency gate: fail the build on a known vulnerability in an installed dependency (pip-audit).

    .venv/bin/python .ci/audit.py [--offline] [--advisories DIR]

Which database answers, in order: PyPI's (pip-audit's default; probed with the per-version JSON
pip-audit reads), then OSV's public API, then, when neither can be reached (no network beyond a
package mirror), the local snapshot in ``.ci/advisories/`` served on loopback as an OSV-compatible
``/v1/query`` (see its README). ``--offline`` goes straight to the snapshot. A dependency that could not be looked up fails the audit instead of being skipped (pip-audit
alone passes a package "not found on PyPI"); Beacon itself (installed editable) is the one exception.

Exit status: 0 when every dependency was audited and none has a known vulnerability, else 1.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

HERE = Path(__file__).resolve().parent
ADVISORIES = HERE / "advisories"
PIP_AUDIT = [sys.executable, "-m", "pip_audit", "--local", "--skip-editable", "--progress-spinner", "off",
             "--format", "json"]
#: Beacon itself: installed editable, on no index.
OURS = "beacon-intranet"


def affects(record: dict[str, Any], name: str, version: str) -> bool:
    """Whether the OSV *record* covers *version* of package *name* (ECOSYSTEM ranges and listed versions)."""
    try:
        installed = Version(version)
    except InvalidVersion:
        return False
    for affected in record.get("affected", []):
        package = affected.get("package", {})
        if package.get("ecosystem") != "PyPI" or canonicalize_name(package.get("name", "")) != name:
            continue
        if version in affected.get("versions", []):
            return True
        for span in affected.get("ranges", []):
            if span.get("type") != "ECOSYSTEM":
                continue
            introduced = None
            for event in span.get("events", []):
                if "introduced" in event:
                    introduced = Version("0") if event["introduced"] == "0" else Version(event["introduced"])
                elif "fixed" in event and introduced is not None:
                    if introduced <= installed < Version(event["fixed"]):
                        return True
                    introduced = None
            if introduced is not None and installed >= introduced:  # no fix yet
                return True
    return False


def load_snapshot(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Package name (canonical) -> its OSV records, from every ``*.json`` in *folder*."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("*.json")):
        for record in json.loads(path.read_text(encoding="utf-8")):
            for affected in record.get("affected", []):
                found.setdefault(canonicalize_name(affected["package"]["name"]), []).append(record)
    return found


def serve_snapshot(snapshot: dict[str, list[dict[str, Any]]]) -> ThreadingHTTPServer:
    """An OSV-compatible ``POST /v1/query`` on 127.0.0.1 answering from *snapshot* (started, on a free port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            query = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            name = canonicalize_name(query.get("package", {}).get("name", ""))
            version = str(query.get("version", ""))
            vulns = [r for r in snapshot.get(name, []) if affects(r, name, version)]
            body = json.dumps({"vulns": vulns} if vulns else {}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _reachable(request: urllib.request.Request) -> bool:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - fixed https URLs
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def online_service() -> str | None:
    """``pypi`` or ``osv`` when that database answers the way pip-audit asks it, else None."""
    pip_version = metadata.version("pip")
    if _reachable(urllib.request.Request(f"https://pypi.org/pypi/pip/{pip_version}/json")):
        return "pypi"
    query = json.dumps({"package": {"name": "pip", "ecosystem": "PyPI"}, "version": pip_version}).encode()
    if _reachable(urllib.request.Request("https://api.osv.dev/v1/query", data=query,
                                         headers={"Content-Type": "application/json"})):
        return "osv"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="audit against the local snapshot only")
    parser.add_argument("--advisories", type=Path, default=ADVISORIES, help="folder of OSV records (offline)")
    args = parser.parse_args(argv)

    service = None if args.offline else online_service()
    if service is not None:
        print(f"pip-audit: auditing the installed packages against the live {service.upper()} database", flush=True)
        return judge(subprocess.run([*PIP_AUDIT, "--vulnerability-service", service], capture_output=True, text=True))
    snapshot = load_snapshot(args.advisories)
    count = sum(len({r["id"] for r in records}) for records in snapshot.values())
    print(f"pip-audit: OFFLINE (neither PyPI's per-version JSON nor OSV answers here): auditing against the local "
          f"snapshot {args.advisories} ({count} advisories for {len(snapshot)} packages), not the live database",
          flush=True)
    server = serve_snapshot(snapshot)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/query"
        env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
        return judge(subprocess.run([*PIP_AUDIT, "--vulnerability-service", "osv", "--osv-url", url],
                                    env=env, capture_output=True, text=True))
    finally:
        server.shutdown()


def judge(run: subprocess.CompletedProcess[str]) -> int:
    """Print pip-audit's findings; 1 for any vulnerability or any dependency that was not audited."""
    try:
        report = json.loads(run.stdout)
    except ValueError:
        print(run.stdout + run.stderr, file=sys.stderr)
        print("pip-audit did not complete", file=sys.stderr)
        return 1
    dependencies = report.get("dependencies", [])
    found = [(d["name"], d["version"], v["id"], ", ".join(v.get("fix_versions", [])) or "none")
             for d in dependencies for v in d.get("vulns", [])]
    unaudited = [f"{d['name']} ({d.get('skip_reason')})" for d in dependencies
                 if d.get("skip_reason") and canonicalize_name(d["name"]) != OURS]
    for name, version, vid, fixed in found:
        print(f"  VULNERABLE {name} {version}: {vid} (fixed in {fixed})")
    for entry in unaudited:
        print(f"  NOT AUDITED {entry}")
    audited = sum(1 for d in dependencies if not d.get("skip_reason"))
    print(f"pip-audit: {audited} packages audited, {len(found)} known "
          f"vulnerabilities, {len(unaudited)} not audited")
    return 1 if found or unaudited or run.returncode not in (0, 1) else 0

if __name__ == "__main__":
    sys.exit(main())
