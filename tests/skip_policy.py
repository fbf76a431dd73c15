"""pytest plugin loaded by scripts/test.sh (`make test`, CI): there a skipped test is a failed test.

A live test skips when its test bed, tool or fixture is missing; run by hand that is a hint, but under
`make test` the script has set everything up, so a skip means a part did not start and must fail the run.
Tests that need what CI cannot have (the engines' installed packages) are marked ``engine_cli_live`` and
deselected instead (tests/unit/conftest.py; `make engine-cli-check` runs them).
"""

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = "skipped under scripts/test.sh, where every selected test must run: %s" % reason
