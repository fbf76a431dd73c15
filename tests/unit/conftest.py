"""Make ``ansible_collections.llmops.inference`` importable for pytest.

The repository root is the collection root; ``make venv`` links it at
.build/collections/ansible_collections/llmops/inference. We create the link
here too, so ``pytest tests/unit`` works straight after a clone.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "llmops", "inference")

if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(ROOT, LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)


def pytest_configure(config):
    config.addinivalue_line("markers", "engine_cli_live: runs the real engine parsers from recorded venvs (slow)")


def pytest_collection_modifyitems(config, items):
    """engine_cli_live tests need the engines installed (scripts/engine_cli/record.py venvs): they run only
    when asked for by name (`make engine-cli-check` passes -m engine_cli_live), and are deselected otherwise."""
    if "engine_cli_live" in (config.getoption("markexpr") or ""):
        return
    live = [item for item in items if item.get_closest_marker("engine_cli_live")]
    if live:
        config.hook.pytest_deselected(items=live)
        items[:] = [item for item in items if not item.get_closest_marker("engine_cli_live")]
