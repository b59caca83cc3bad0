"""The one place a built resource meets its fhir.resources model.

Every builder makes a JSON-ready dict and passes it through `validated`, so no resource
leaves the package unless its R4B model parsed it. The models forbid unknown elements
and check each element's type and the FHIR pattern of each primitive (ids, codes,
instants, non-empty strings); they do not check value-set bindings.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.resource import Resource

JsonResource = dict[str, Any]


def validated(model: type[Resource], resource: JsonResource) -> JsonResource:
    """`resource` once `model` parsed it; pydantic's ValidationError (a ValueError) if it
    does not parse or is not a `model` resource.

    What is returned is `resource` itself, not the model's dump: the dump is equal to it
    element for element, except that it shortens an instant whose microseconds are zero
    ("...12.000000Z" to "...12Z"), and the ledger's timestamps must come back as written.
    """
    expected = model.get_resource_type()
    if resource.get("resourceType") != expected:
        raise ValueError(f"The resource given is not a {expected}: its resourceType differs.")
    model.model_validate(resource)
    return resource
