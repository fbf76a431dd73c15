"""docs/reference is what scripts/docs_reference.sh generates from the current DOCUMENTATION and
argument specs (run `make docs` after changing a module, filter or role spec)."""

import filecmp
import os
import re
import subprocess

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


# Roles whose option descriptions are being rewritten on another branch (issue 16); drop a role from
# this list once its argument spec says what each option does.
BARE_REFERENCES_PENDING = ()
BARE = re.compile(r"^\W*see\s+[\w./#-]+\W*$", re.IGNORECASE)


def _options(options, prefix=""):
    for name, option in (options or {}).items():
        yield prefix + name, option
        yield from _options(option.get("options"), prefix + name + ".")


def test_no_role_option_description_is_a_bare_cross_reference():
    import yaml

    bare = []
    for role in sorted(os.listdir(os.path.join(ROOT, "roles"))):
        path = os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")
        if role in BARE_REFERENCES_PENDING or not os.path.exists(path):
            continue
        with open(path) as handle:
            specs = yaml.safe_load(handle)["argument_specs"]
        for entry_point, spec in specs.items():
            for name, option in _options(spec.get("options")):
                description = option.get("description") or ""
                text = " ".join(description) if isinstance(description, list) else description
                if not text.strip() or BARE.match(text.strip()):
                    bare.append("%s/%s: %s (%r)" % (role, entry_point, name, text))
    assert not bare, bare
