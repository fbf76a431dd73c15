"""docs/reference is what scripts/docs_reference.sh generates from the current DOCUMENTATION and
argument specs (run `make docs` after changing a module, filter or role spec)."""

import filecmp
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = os.path.join(ROOT, "docs", "reference")
# How every filter plugin registers its filters: "name": filter_function(...)
REGISTERED = re.compile(r'"(\w+)":\s*filter_function\(')


def test_reference_is_current(tmp_path):
    dest = tmp_path / "reference"
    subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "docs_reference.sh"), str(dest)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    stale = [
        name
        for name in sorted(os.listdir(dest))
        if not os.path.exists(os.path.join(REFERENCE, name))
        or not filecmp.cmp(os.path.join(dest, name), os.path.join(REFERENCE, name), shallow=False)
    ]
    stale += sorted(set(os.listdir(REFERENCE)) - set(os.listdir(dest)))
    assert not stale, "docs/reference is out of date for %s: run `make docs`" % ", ".join(stale)


def test_every_filter_and_role_has_a_reference_page():
    """Every filter registered in plugins/filter and every role has its page (so none is undocumented)."""
    pages = set(os.listdir(REFERENCE))
    filters = set()
    for name in os.listdir(os.path.join(ROOT, "plugins", "filter")):
        if name.endswith(".py") and not name.startswith("_"):
            with open(os.path.join(ROOT, "plugins", "filter", name)) as handle:
                text = handle.read()
            filters.update(REGISTERED.findall(text))
    roles = set(os.listdir(os.path.join(ROOT, "roles")))
    missing = sorted("%s_filter.rst" % f for f in filters if "%s_filter.rst" % f not in pages)
    missing += sorted("%s_role.rst" % r for r in roles if "%s_role.rst" % r not in pages)
    assert len(filters) >= 19
    assert not missing, missing


# A description that only points elsewhere says nothing in `ansible-doc` or docs/reference. What is left
# once the pointers are taken out ("Collection-wide", "see docs/x.md", "(docs/x.md, docs/y.md)", "See the
# role README") must still say something: at least MIN_WORDS words ("Release namespace." is terse, not bare).
MIN_WORDS = 2
_COLLECTION_WIDE = re.compile(r"^\W*collection[- ]wide\b\W*", re.IGNORECASE)
_POINTERS = (
    re.compile(r"\bsee\s+(the\s+)?[\w./#-]+(\s+(section|page|docs?|readme))?", re.IGNORECASE),
    re.compile(r"\bdocs/[\w./#-]+"),
)


def _options(options, prefix=""):
    for name, option in (options or {}).items():
        yield prefix + name, option
        yield from _options(option.get("options"), prefix + name + ".")


def _paragraphs(option):
    description = option.get("description") or ""
    return [description] if isinstance(description, str) else [str(item) for item in description]


def bare_cross_reference(text):
    """True when ``text`` says nothing once "Collection-wide" and its references to other docs are taken out."""
    rest = _COLLECTION_WIDE.sub("", text.strip())
    for pointer in _POINTERS:
        rest = pointer.sub("", rest)
    return len(re.findall(r"[A-Za-z][A-Za-z0-9_-]+", rest)) < MIN_WORDS


def role_options():
    """(role, entry point, option name, option) of every role argument spec."""
    import yaml

    for role in sorted(os.listdir(os.path.join(ROOT, "roles"))):
        path = os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")
        if not os.path.exists(path):
            continue
        with open(path) as handle:
            specs = yaml.safe_load(handle)["argument_specs"]
        for entry_point, spec in specs.items():
            for name, option in _options(spec.get("options")):
                yield role, entry_point, name, option


def test_bare_cross_reference_rule():
    for bare in (
        "See docs/serving.md.",
        "Collection-wide; see docs/serving.md.",
        "Collection-wide.",
        "collection-wide",
        "Collection-wide; see docs/conventions.md",
        "Collection-wide inputs (docs/conventions.md, docs/serving.md).",
        "See the README.",
        "see docs/serving.md#model-cache section",
        "",
    ):
        assert bare_cross_reference(bare), bare
    for says in (
        "Collection-wide. Namespace the serving objects go to.",
        "Kubeconfig of the cluster (defaults to C(K8S_AUTH_KUBECONFIG)).",
        "Retries of the download Job; see docs/serving.md for the budget.",
    ):
        assert not bare_cross_reference(says), says


def test_no_role_option_description_is_a_bare_cross_reference():
    bare = [
        "%s/%s: %s (%r)" % (role, entry_point, name, option.get("description"))
        for role, entry_point, name, option in role_options()
        if bare_cross_reference(" ".join(_paragraphs(option)))
    ]
    assert not bare, bare


def test_collection_wide_options_say_the_same_in_every_role():
    """An llmops_* option means one thing: its first paragraph, type and choices are the same in every role
    (a second paragraph may add what the option does in that role), and docs/conventions.md names it."""
    seen = {}
    for role, _entry_point, name, option in role_options():
        if name.startswith("llmops_"):
            shape = (_paragraphs(option)[0], option.get("type", "str"), tuple(option.get("choices") or ()))
            seen.setdefault(name, {}).setdefault(shape, set()).add(role)
    differing = {name: shapes for name, shapes in seen.items() if len(shapes) > 1}
    assert not differing, differing
    with open(os.path.join(ROOT, "docs", "conventions.md")) as handle:
        conventions = handle.read()
    named = {pattern.replace("*", ".*") for pattern in re.findall(r"`(llmops_[\w*]+)`", conventions)}
    unnamed = sorted(name for name in seen if not any(re.fullmatch(pattern, name) for pattern in named))
    assert not unnamed, "docs/conventions.md does not name %s" % ", ".join(unnamed)


def test_serving_role_tables_are_current():
    """docs/serving.md's "Role variables" tables are what scripts/serving_role_tables.py writes from the specs."""
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "serving_role_tables.py"), "--check"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


_POINTER_WORDS = re.compile(r"\bsee\b|docs/|collection[- ]wide", re.IGNORECASE)


def meaning_rows(text):
    """(first cell, meaning) of every row of the Markdown tables whose last column is "meaning"."""
    header = None
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            header = None
        elif header is None:
            header = cells
        elif header[-1] == "meaning" and not set(line) <= set("|- :"):
            yield cells[0], cells[-1]


def test_no_doc_table_row_is_a_bare_cross_reference():
    """A row of a docs/*.md "meaning" table says what the variable does (no "See docs/serving.md" rows)."""
    bare = []
    rows = 0
    for name in sorted(os.listdir(os.path.join(ROOT, "docs"))):
        if name.endswith(".md"):
            with open(os.path.join(ROOT, "docs", name)) as handle:
                for variable, meaning in meaning_rows(handle.read()):
                    rows += 1
                    # Terse cells ("hold", "seconds") are another matter: only a pointer and nothing else fails.
                    if bare_cross_reference(meaning) and _POINTER_WORDS.search(meaning):
                        bare.append("%s: %s (%r)" % (name, variable, meaning))
    assert rows > 150
    assert not bare, bare
