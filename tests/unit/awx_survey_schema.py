"""The controller's survey rules, restated from AWX's source so specs and answers are checked without a
controller (none can run here: AWX needs PostgreSQL, Redis and Receptor).

- ``validate_spec``: awx/api/views/__init__.py, ``JobTemplateSurveySpec._validate_spec_data`` (the check
  POST /api/v2/job_templates/N/survey_spec/ runs): name/description strings, a non-empty spec list; per
  question type/question_name/variable strings and required bool, no duplicate variable, a type from
  ALLOWED_TYPES, a default of that type, integer min/max, choices for multiplechoice/multiselect with
  the default among them (one default for multiplechoice), ``$encrypted$`` only for password defaults.
- ``validate_answers``: awx/main/models/mixins.py, ``SurveyJobTemplateMixin._survey_element_validation``
  (the check at launch): required answers present; text/textarea/password strings within min/max length;
  integer answers ints within min/max; float answers numbers within min/max; multiplechoice answers
  one of the choices; multiselect answers lists of choices.
"""

ALLOWED_TYPES = {
    "text": str,
    "textarea": str,
    "password": str,
    "multiplechoice": str,
    "multiselect": str,
    "integer": int,
    "float": float,
}


def _choices(question):
    choices = question.get("choices")
    if isinstance(choices, str):
        return [choice for choice in choices.splitlines() if choice.strip() != ""]
    return list(choices or [])


def validate_spec(spec):
    """Errors AWX would answer with HTTP 400 (an empty list when the spec is accepted)."""
    errors = []
    for field, expect_type in (("name", str), ("description", str), ("spec", list)):
        if field not in spec:
            errors.append("Field '%s' is missing from survey spec." % field)
        elif not isinstance(spec[field], expect_type):
            errors.append("Expected %s for field '%s'" % (expect_type.__name__, field))
    if errors:
        return errors
    if not spec["spec"]:
        return ["'spec' doesn't contain any items."]
    variables = set()
    for idx, item in enumerate(spec["spec"]):
        if not isinstance(item, dict):
            errors.append("Survey question %d is not a json object." % idx)
            continue
        for field in ("type", "question_name", "variable", "required"):
            if field not in item:
                errors.append("'%s' missing from survey question %d" % (field, idx))
            elif not isinstance(item[field], bool if field == "required" else str):
                errors.append("'%s' in survey question %d has the wrong type" % (field, idx))
        if errors:
            continue
        if item["variable"] in variables:
            errors.append("'variable' '%s' duplicated in survey question %d." % (item["variable"], idx))
        variables.add(item["variable"])
        qtype = item["type"]
        if qtype not in ALLOWED_TYPES:
            errors.append("'%s' in survey question %d is not an allowed question type." % (qtype, idx))
            continue
        default = item.get("default", "")
        # bool is an int in Python; AWX's isinstance check lets it through, JSON would not carry it.
        if default != "" and (not isinstance(default, ALLOWED_TYPES[qtype]) or isinstance(default, bool)):
            errors.append("Default value %r in survey question %d expected to be %s." % (item["default"], idx, qtype))
        for key in ("min", "max"):
            if (
                key in item
                and item[key] is not None
                and (not isinstance(item[key], int) or isinstance(item[key], bool))
            ):
                errors.append("The %s limit in survey question %d expected to be integer." % (key, idx))
        if qtype in ("multiplechoice", "multiselect"):
            if "choices" not in item:
                errors.append("Survey question %d of type %s must specify choices." % (idx, qtype))
                continue
            if "default" in item:
                default = item["default"]
                defaults = [d for d in default.splitlines() if d.strip()] if isinstance(default, str) else default
                if qtype == "multiplechoice" and len(defaults) > 1:
                    errors.append("Multiple Choice (Single Select) can only have one default value.")
                if any(d not in _choices(item) for d in defaults):
                    errors.append("Default choice must be answered from the choices listed.")
        if isinstance(item.get("default"), str) and item["default"].startswith("$encrypted$") and qtype != "password":
            errors.append("$encrypted$ is a reserved keyword for password question defaults.")
    return errors


def validate_answers(spec, answers):
    """Errors AWX would refuse a launch with for these survey answers (extra_vars)."""
    errors = []
    for item in spec["spec"]:
        variable = item["variable"]
        if variable not in answers:
            if item["required"]:
                errors.append("'%s' value missing" % variable)
            continue
        value = answers[variable]
        qtype = item["type"]
        minimum, maximum = item.get("min"), item.get("max")
        if qtype in ("text", "textarea", "password"):
            if not isinstance(value, str):
                errors.append("Value %r for '%s' expected to be a string." % (value, variable))
                continue
            if value == "" and not item["required"]:
                continue
            if minimum not in ("", None) and len(value) < int(minimum):
                errors.append(
                    "'%s' value %r is too small (length is %d must be at least %s)."
                    % (variable, value, len(value), minimum)
                )
            if maximum not in ("", None) and len(value) > int(maximum):
                errors.append("'%s' value %r is too large (must be no more than %s)." % (variable, value, maximum))
        elif qtype == "integer":
            if not isinstance(value, int) or isinstance(value, bool):  # AWX: type(value) != int
                errors.append("Value %r for '%s' expected to be an integer." % (value, variable))
                continue
            if minimum not in ("", None) and value < int(minimum):
                errors.append("'%s' value %s is too small (must be at least %s)." % (variable, value, minimum))
            if maximum not in ("", None) and value > int(maximum):
                errors.append("'%s' value %s is too large (must be no more than %s)." % (variable, value, maximum))
        elif qtype == "float":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                errors.append("Value %r for '%s' expected to be a numeric type." % (value, variable))
                continue
            if minimum not in ("", None) and value < float(minimum):
                errors.append("'%s' value %s is too small." % (variable, value))
            if maximum not in ("", None) and value > float(maximum):
                errors.append("'%s' value %s is too large." % (variable, value))
        elif qtype == "multiplechoice":
            if value not in _choices(item):
                errors.append("Value %r for '%s' expected to be one of %s." % (value, variable, _choices(item)))
        elif qtype == "multiselect" and (not isinstance(value, list) or any(v not in _choices(item) for v in value)):
            errors.append("Value %r for '%s' expected to be a list of choices." % (value, variable))
    return errors
