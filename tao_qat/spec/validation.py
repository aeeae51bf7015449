"""Validate parsed spec messages, collecting every error (TAO digest §1.11; docs/specs.md).

``validate(message, kind, source)`` raises ``SpecValidationError`` (a ``SpecError``) whose
``errors`` lists one ``<file>: <field path>: <rule> (<value>)`` line per violation.
"""

from tao_qat.spec.checker import Checker, SpecValidationError
from tao_qat.spec.experiment_rules import check_experiment
from tao_qat.spec.export_inference_rules import check_dataset_export, check_inference
from tao_qat.spec.value_rules import check_field_values

__all__ = ["SpecValidationError", "collect_errors", "validate"]

_RULES = {
    "experiment": check_experiment,
    "dataset_export": check_dataset_export,
    "inference": check_inference,
}


def collect_errors(message, kind, source="<spec>"):
    """Return the list of error lines of spec ``message`` of ``kind`` (empty when valid)."""
    if kind not in _RULES:
        raise ValueError(f"unknown spec kind {kind!r}")
    checker = Checker(source)
    check_field_values(message, checker)
    _RULES[kind](message, checker)
    return checker.errors


def validate(message, kind, source="<spec>"):
    """Raise SpecValidationError listing every rule ``message`` violates; return it if valid."""
    errors = collect_errors(message, kind, source)
    if errors:
        raise SpecValidationError(errors)
    return message
