"""TD validation (official schemas + WoT Discovery minimal checks) and data-schema checkers.

The example TDs are official W3C examples (tests/support/data/README.md).
"""

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from digitwin.validation import (
    FieldError,
    ValidationError,
    compile_data_schema,
    validate_td,
)
from tests.support.examples import EXAMPLE_TDS, load_example

TD10 = "https://www.w3.org/2019/wot/td/v1"


def errors_of(td: object) -> list[FieldError]:
    with pytest.raises(ValidationError) as info:
        validate_td(td)
    assert info.value.errors, "a ValidationError must list at least one field"
    return info.value.errors


def fields_of(td: object) -> set[str]:
    return {e.field for e in errors_of(td)}


# --- valid TDs ----------------------------------------------------------------------------------


def test_examples_are_present() -> None:
    assert len(EXAMPLE_TDS) >= 12


@pytest.mark.parametrize("path", EXAMPLE_TDS, ids=lambda p: p.name)
def test_official_example_td_is_valid(path: Path) -> None:
    assert validate_td(json.loads(path.read_text("utf-8"))) is None


def test_td_with_only_the_td10_context_is_valid(lamp: dict[str, Any]) -> None:
    lamp["@context"] = TD10
    assert validate_td(lamp) is None


def test_td10_context_selects_the_td10_schema(lamp: dict[str, Any]) -> None:
    # observeallproperties is a Thing-level op only since TD 1.1.
    lamp["forms"] = [{"href": "https://mylamp.example.com/all", "op": "observeallproperties"}]
    assert validate_td(lamp) is None
    lamp["@context"] = TD10
    assert fields_of(lamp) == {"forms.0.op"}


def test_validation_does_not_modify_the_td(lamp: dict[str, Any]) -> None:
    before = copy.deepcopy(lamp)
    validate_td(lamp)
    assert lamp == before


# --- one problem each ---------------------------------------------------------------------------


def test_td_that_is_a_list_fails_at_root() -> None:
    assert errors_of([{"title": "x"}]) == [
        FieldError("(root)", "Invalid type. Expected: object, given: array")
    ]


def test_missing_title(lamp: dict[str, Any]) -> None:
    del lamp["title"]
    assert errors_of(lamp) == [FieldError("(root)", "title is required")]


def test_missing_security(lamp: dict[str, Any]) -> None:
    del lamp["security"]
    assert errors_of(lamp) == [FieldError("(root)", "security is required")]


def test_thing_security_naming_an_undefined_scheme(lamp: dict[str, Any]) -> None:
    lamp["security"] = "ghost_sc"
    assert errors_of(lamp) == [
        FieldError("security", "'ghost_sc' is not defined in securityDefinitions")
    ]


def test_thing_security_array_names_the_undefined_item(lamp: dict[str, Any]) -> None:
    lamp["security"] = ["basic_sc", "ghost_sc"]
    assert fields_of(lamp) == {"security.1"}


def test_form_security_naming_an_undefined_scheme(lamp: dict[str, Any]) -> None:
    lamp["properties"]["status"]["forms"][0]["security"] = ["ghost_sc"]
    lamp["forms"] = [{"href": "/all", "op": "readallproperties", "security": "other_sc"}]
    assert fields_of(lamp) == {"properties.status.forms.0.security.0", "forms.0.security"}


def test_combo_scheme_naming_an_undefined_scheme(lamp: dict[str, Any]) -> None:
    lamp["securityDefinitions"]["combo_sc"] = {"scheme": "combo", "oneOf": ["basic_sc", "ghost"]}
    assert errors_of(lamp) == [
        FieldError(
            "securityDefinitions.combo_sc.oneOf.1", "'ghost' is not defined in securityDefinitions"
        )
    ]


def test_bad_op_on_a_property_form(lamp: dict[str, Any]) -> None:
    lamp["properties"]["status"]["forms"][0]["op"] = "invokeaction"
    (error,) = errors_of(lamp)
    assert error.field == "properties.status.forms.0.op"
    assert "readproperty" in error.description and "invokeaction" in error.description


def test_form_without_href(lamp: dict[str, Any]) -> None:
    del lamp["actions"]["toggle"]["forms"][0]["href"]
    assert errors_of(lamp) == [FieldError("actions.toggle.forms.0", "href is required")]


def test_context_without_a_td_uri(lamp: dict[str, Any]) -> None:
    lamp["@context"] = ["https://www.w3.org/2022/wot/discovery"]
    (error,) = errors_of(lamp)
    assert error.field == "@context"
    assert "https://www.w3.org/2022/wot/td/v1.1" in error.description


def test_id_that_is_not_an_absolute_uri(lamp: dict[str, Any]) -> None:
    lamp["id"] = "my lamp"
    assert fields_of(lamp) == {"id"}


def test_registration_created_must_be_rfc3339() -> None:
    td = load_example("discovery-ex04-enriched.td.json")
    td["registration"]["created"] = "2021-01-19 17:02"
    (error,) = errors_of(td)
    assert error.field == "registration.created"
    assert "date-time" in error.description


def test_registration_ttl_must_be_a_number() -> None:
    td = load_example("discovery-ex06-enriched-expirable.td.json")
    td["registration"]["ttl"] = "3600"
    assert fields_of(td) == {"registration.ttl"}


def test_unknown_security_scheme_names_the_allowed_ones(lamp: dict[str, Any]) -> None:
    lamp["securityDefinitions"]["basic_sc"]["scheme"] = "magic"
    (error,) = errors_of(lamp)
    assert error.field == "securityDefinitions.basic_sc.scheme"
    assert '"basic"' in error.description and '"magic"' in error.description


# --- many problems, malformed TDs ---------------------------------------------------------------


def test_every_problem_is_listed(lamp: dict[str, Any]) -> None:
    del lamp["title"]
    lamp["id"] = "no scheme"
    lamp["security"] = "ghost_sc"
    lamp["properties"]["status"]["forms"][0]["op"] = "subscribeevent"
    del lamp["actions"]["toggle"]["forms"][0]["href"]
    lamp["events"]["overheating"]["forms"][0]["security"] = "ghost_sc"
    lamp["registration"] = {"created": "yesterday"}
    assert fields_of(lamp) == {
        "(root)",
        "id",
        "security",
        "properties.status.forms.0.op",
        "actions.toggle.forms.0",
        "events.overheating.forms.0.security",
        "registration.created",
    }


def test_matches_the_discovery_spec_error_example(lamp: dict[str, Any]) -> None:
    expected = load_example("discovery-ex10-validation-error.problem.json")["validationErrors"]
    del lamp["security"]
    lamp["properties"]["status"]["forms"][0]["href"] = 42
    assert [e.as_dict() for e in errors_of(lamp)] == expected


def test_malformed_td_reports_instead_of_crashing(lamp: dict[str, Any]) -> None:
    lamp["securityDefinitions"] = ["basic_sc"]
    lamp["properties"] = {"status": 5}
    lamp["actions"]["toggle"]["forms"] = "nope"
    assert fields_of(lamp) == {"securityDefinitions", "properties.status", "actions.toggle.forms"}


def test_validation_error_summary_and_dicts(lamp: dict[str, Any]) -> None:
    del lamp["title"]
    del lamp["security"]
    with pytest.raises(ValueError) as info:  # ValidationError is a ValueError
        validate_td(lamp)
    message = str(info.value)
    assert message.startswith("2 validation errors")
    assert "title is required" in message and "\n" not in message
    assert info.value.errors[0].as_dict() == {"field": "(root)", "description": "title is required"}


# --- data schemas -------------------------------------------------------------------------------


def data_errors(check: Any, value: object) -> list[FieldError]:
    with pytest.raises(ValidationError) as info:
        check(value)
    return info.value.errors


def test_integer_with_minimum_and_maximum() -> None:
    check = compile_data_schema({"type": "integer", "minimum": 0, "maximum": 100})
    assert check(0) is None and check(100) is None
    for bad in (-1, 101, 2.5, "5", True):
        assert [e.field for e in data_errors(check, bad)] == ["(root)"]


def test_string_enum() -> None:
    check = compile_data_schema({"type": "string", "enum": ["on", "off"]})
    assert check("on") is None
    (error,) = data_errors(check, "dim")
    assert error.field == "(root)" and '"on"' in error.description


def test_object_with_required_properties() -> None:
    check = compile_data_schema(
        {
            "type": "object",
            "properties": {"level": {"type": "integer", "minimum": 0}},
            "required": ["level"],
        }
    )
    assert check({"level": 3}) is None
    assert data_errors(check, {}) == [FieldError("(root)", "level is required")]
    assert [e.field for e in data_errors(check, {"level": -1})] == ["level"]


def test_array_items() -> None:
    check = compile_data_schema({"type": "array", "items": {"type": "number"}})
    assert check([1, 2.5]) is None
    assert [e.field for e in data_errors(check, [1, "two", 3, None])] == ["1", "3"]


def test_property_affordance_keys_are_not_schema_keywords() -> None:
    check = compile_data_schema(
        {
            "type": "integer",
            "unit": "percent",
            "observable": True,
            "readOnly": True,
            "forms": [{"href": "https://example.com/level"}],
            "@type": "saref:LevelProperty",
            "titles": {"en": "Level"},
        }
    )
    assert check(42) is None
    assert data_errors(check, "42")


def test_property_named_like_a_td_key_is_still_checked() -> None:
    check = compile_data_schema(
        {"type": "object", "properties": {"unit": {"type": "string"}}, "required": ["unit"]}
    )
    assert [e.field for e in data_errors(check, {"unit": 1})] == ["unit"]


def test_unknown_format_passes() -> None:
    check = compile_data_schema({"type": "string", "format": "frobnicated"})
    assert check("anything at all") is None


def test_known_formats_are_not_enforced_either() -> None:
    check = compile_data_schema({"type": "string", "format": "date-time"})
    assert check("tomorrow, probably") is None


def test_empty_schema_accepts_anything() -> None:
    check = compile_data_schema({})
    for value in (None, 1, "x", [1, {"a": []}], {"b": 2}):
        assert check(value) is None


def test_defaults_are_not_written_into_the_value() -> None:
    check = compile_data_schema({"type": "object", "properties": {"a": {"default": 1}}})
    value: dict[str, Any] = {}
    check(value)
    assert value == {}


def test_equal_schemas_share_one_checker() -> None:
    schema = {"type": "string", "maxLength": 3}
    assert compile_data_schema(schema) is compile_data_schema(copy.deepcopy(schema))


def test_broken_schema_is_refused_at_compile_time() -> None:
    with pytest.raises(ValidationError) as info:
        compile_data_schema({"type": "object", "properties": {"level": {"type": "nonsense"}}})
    (error,) = info.value.errors
    assert error.field == "properties.level.type"
    assert "nonsense" in error.description


def test_schema_with_a_bad_pattern_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        compile_data_schema({"type": "string", "pattern": "(unclosed"})
    assert [e.field for e in info.value.errors] == ["pattern"]


def test_schema_with_a_remote_ref_is_refused() -> None:
    with pytest.raises(ValidationError):
        compile_data_schema({"$ref": "https://example.com/schema.json"})
