"""axe-core in Chromium: the WCAG 2.1 AA check the browser tests run on a page (shadow DOM included).

axe-core comes from the npm registry (``tests/package.json``, installed by ``make test``) and is
evaluated in the page through the DevTools protocol, which a page's Content-Security-Policy does not
cover, so pages are checked under their production policy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
#: WCAG 2.0/2.1 A and AA rules: the level the product promises.
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def serious_violations(page: Any) -> list[str]:
    """What axe finds serious or critical on *page*, one line per rule with the elements it found."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    found = page.evaluate(
        """async (tags) => (await axe.run(document, {runOnly: {type: "tag", values: tags},
                                                        resultTypes: ["violations"]})).violations
             .filter(v => v.impact === "serious" || v.impact === "critical")
             .map(v => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map(n => n.target.join(" ")).join(", ")}`)""",
        TAGS)
    return list(found)
