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
