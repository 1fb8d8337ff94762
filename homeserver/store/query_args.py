"""The positional arguments of a query whose SQL is assembled from optional conditions."""

from __future__ import annotations


class QueryArgs:
    """Arguments in placeholder order: those given first are $1, $2, ...; `param` adds
    one more and returns its placeholder, to write into the SQL."""

    def __init__(self, *values: object, offset: int = 0) -> None:
        self.values: list[object] = list(values)
        # Placeholders the query numbers before these, for arguments passed apart.
        self._offset = offset

    def param(self, value: object) -> str:
        self.values.append(value)
        return f"${self._offset + len(self.values)}"
