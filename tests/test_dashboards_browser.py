"""Every dashboard in Chromium under the production Content-Security-Policy: the charts are drawn, with no
console error and no CSP violation."""
from __future__ import annotations

import pytest

from tests.dashboard_support import organisation

pytestmark = pytest.mark.browser

# Registered before any page script runs (through the DevTools protocol, so the CSP does not apply to it).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sample || ""));
});
"""


def test_every_dashboard_draws_its_charts_under_the_csp(page, live_server, sign_in_browser, make_employee, make_post,
                                                         db):
    """The organisation and post dashboards: one plotly chart per JSON block, the CSP header is the
    production one (scripts 'self' only), and nothing is refused or fails."""
    org = organisation(make_employee, make_post, db)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(RECORD_VIOLATIONS)
    sign_in_browser(make_employee(is_comms=True))
    for path in ("/analytics", "/analytics?zone=Asia/Tokyo", f"/analytics/posts/{org['post'].id}"):
        response = page.goto(f"{live_server}{path}")
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe-eval" not in policy
        blocks = page.locator("script.intranet-chart").count()
        assert blocks >= 2, path
        page.wait_for_function("n => document.querySelectorAll('.chart-area .main-svg').length >= n && "
                               "document.querySelectorAll('script.intranet-chart[data-rendered]').length === n",
                               arg=blocks)
        drawn = page.locator(".chart-area.js-plotly-plot").count()
        assert drawn == blocks, path
        # The toolbar offers the PNG download, and nothing that sends the data elsewhere.
        assert page.locator(".chart-area .modebar-btn[data-title='Download plot as a PNG']").count() == blocks
        assert page.locator(".modebar-btn[data-title='Share chart...']").count() == 0
        assert page.evaluate("window.__cspViolations") == [], path
    assert errors == []
