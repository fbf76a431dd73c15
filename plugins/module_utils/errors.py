# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors shared by the collection's module_utils.

Logic in module_utils raises LlmopsError with a message written for the person
running the playbook; the thin modules turn it into ``module.fail_json``.
"""

from __future__ import annotations


class LlmopsError(Exception):
    """A problem the user can fix: bad input, a missing tool, a plan that cannot fit."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.message = message
        self.details = details


def refuse_nul(params):
    """Raise LlmopsError for a string option holding a NUL byte (open() and exec raise ValueError on one)."""
    for name, value in sorted((params or {}).items()):
        if isinstance(value, str) and "\x00" in value:
            raise LlmopsError("%s holds a NUL byte (\\x00): give a plain path or name" % name)
