"""axe-core accessibility checks in the browser tests, with the axe.min.js that the
``axe-selenium-python`` package ships (no download at test time)."""

from __future__ import annotations

from importlib.resources import files

# WCAG 2 A and AA rules; a violation of impact "serious" or "critical" fails a test.
TAGS = ["wcag2a", "wcag2aa"]
FAILING_IMPACTS = ("serious", "critical")


def axe_source() -> str:
    return (files("axe_selenium_python") / "node_modules" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")


def serious_violations(browser, context: str = "document") -> list[str]:
    """Run axe on the current page; one line per serious or critical violation (empty: none)."""
    if not browser.execute_script("return typeof window.axe === 'object'"):
        browser.execute_script(axe_source())
    result = browser.execute_async_script(
        f"""var done = arguments[arguments.length - 1];
        axe.run({context}, {{runOnly: {{type: 'tag', values: {TAGS!r}}}, resultTypes: ['violations']}})
           .then(function (r) {{ done(r.violations); }}, function (e) {{ done([{{id: 'axe-error', impact: 'critical',
             help: String(e), nodes: []}}]); }});"""
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']}: " + "; ".join(n["target"][0] if n.get("target") else "" for n in v["nodes"][:5])
        for v in result
        if v.get("impact") in FAILING_IMPACTS
    ]
