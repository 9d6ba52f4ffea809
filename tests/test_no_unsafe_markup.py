"""Escaping everywhere: |safe only on the sanitized post body, no Markup or template strings in code."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_SAFE = {"post.body_html|safe", "body_html|safe"}


def test_safe_filter_only_on_sanitized_bodies():
    """Every |safe in templates/ applies to a sanitized body_html field."""
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        code = re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.S)  # comments may mention |safe
        for match in re.finditer(r"[\w.\[\]'\"]+\s*\|\s*safe", code):
            if match.group(0).replace(" ", "") not in ALLOWED_SAFE:
                offenders.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert offenders == []


def test_no_markup_or_template_strings_in_code():
    """Python code never builds markup by hand (Markup(), render_template_string)."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "intranet").rglob("*.py")
                 if re.search(r"\bMarkup\(|render_template_string", p.read_text())]
    assert offenders == []


def test_no_inline_scripts_or_handlers_in_templates():
    """Templates carry no inline <script> code and no on* handler attributes (the CSP forbids them)."""
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for match in re.finditer(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", text):
            offenders.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
        if re.search(r"\son[a-z]+\s*=", text):
            offenders.append(f"{path.relative_to(ROOT)}: inline event handler")
    assert offenders == []
