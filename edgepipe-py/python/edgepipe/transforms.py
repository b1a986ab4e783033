"""The seed's ``transforms.py``, backed by edgepipe's Rust core.

Replace ``from transforms import ...`` with ``from edgepipe.transforms import ...``.
Each factory returns an edgepipe transform, callable on one record like the
seed's closures; ``TransformPipeline.process`` runs a chain of them in Rust and
calls any other callable (your own function) with the record, as the seed does.

Differences from the seed (see ``docs/migrating-from-seed.md``):

- Arguments are checked when the transform is made: ``filter_fields("temp")``
  (a str, which the seed would match as a substring) or a schema entry that is
  not a type raise TypeError naming the argument.
- ``validate_schema``'s ValueError carries the refused record as ``.record`` and
  the field as ``.field``; ``DataCollector`` counts and keeps refused records
  instead of dropping them with the rest of their source's items.
"""

from ._edgepipe import (
    SeedTransform,
    TransformPipeline,
    add_computed_field,
    add_metadata,
    filter_fields,
    mask_sensitive_fields,
    rename_fields,
    validate_schema,
)

__all__ = [
    "SeedTransform",
    "TransformPipeline",
    "add_computed_field",
    "add_metadata",
    "filter_fields",
    "mask_sensitive_fields",
    "rename_fields",
    "validate_schema",
]
