"""Who owns a line item: the value of the tag or cost category named by SENTINEL_OWNER_KEY.

Exports carry tags and cost categories in one column of key/value pairs: FOCUS ``Tags`` (JSON
text in CSV; a map, a struct or JSON text in Parquet), CUR 2.0 ``resource_tags`` and
``cost_category`` (Parquet maps). ``owner_values`` reads the owner out of such a column for a
whole batch at once (Arrow kernels for maps and structs; JSON text is parsed once per distinct
value, not per line item). A line item without the key is untagged: null here, "" once labelled.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc


def owner_values(column: pa.Array | pa.ChunkedArray, names: tuple[str, ...]) -> pa.Array:
    """The owner of each row as text, null where the row has none of the keys ``names`` (the
    spellings of one owner key, e.g. ``OwnerKey.tag_names``: the first found wins)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if pa.types.is_map(kind):
        found: pa.Array | None = None
        for name in names:
            value = _as_text(pc.map_lookup(column, pa.scalar(name, kind.key_type), "first"))
            found = value if found is None else pc.coalesce(found, value)
        assert found is not None
        return found
    if pa.types.is_struct(kind):
        fields = [kind.field(i).name for i in range(kind.num_fields)]
        values = [_as_text(pc.struct_field(column, fields.index(n))) for n in names
                  if n in fields]
        if not values:
            return pa.nulls(len(column), pa.string())
        return values[0] if len(values) == 1 else pc.coalesce(*values)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _from_json(column, names)
    return pa.nulls(len(column), pa.string())


def _as_text(values: pa.Array) -> pa.Array:
    """Tag values as text (some Parquet writers store numbers); empty text counts as none."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = values.cast(pa.string())
    values = pc.utf8_trim_whitespace(values.cast(pa.string()))
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


def _from_json(column: pa.Array, names: tuple[str, ...]) -> pa.Array:
    """JSON objects as text (FOCUS CSV ``Tags``): each distinct text parsed once."""
    encoded = pc.dictionary_encode(column)
    owners: list[str | None] = []
    for text in encoded.dictionary.to_pylist():
        owners.append(_owner_of(text, names))
    dictionary = _as_text(pa.array(owners, pa.string()))
    return dictionary.take(encoded.indices)


def _owner_of(text: str | None, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` in one JSON object; None for no object, no key or bad JSON (a
    tag column that cannot be read leaves the row untagged rather than failing the run)."""
    if not text or text.strip() in ("", "NULL"):
        return None
    try:
        tags = json.loads(text)
    except ValueError:
        return None
    if not isinstance(tags, dict):
        return None
    for name in names:
        value = tags.get(name)
        if value is not None and not isinstance(value, dict | list):
            return str(value)
    return None
