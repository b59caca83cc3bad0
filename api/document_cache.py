"""What the server keeps per GraphQL document text, between requests that send it again."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class DocumentCache(Generic[V]):
    """Values by document text: an LRU of `maxsize`, taking a text in when it comes back.

    Clients send the same few documents again and again; anyone may also send endless
    distinct ones. Keeping each of those would fill the cache with trees no one asks for
    again, and every full garbage collection walks what the cache keeps: 128 parsed
    500-token documents (about 2,000 objects each) made one take 190 ms instead of 35.
    So the first time a text is offered only its hash is remembered (an int, which the
    collector does not track), among the last `8 * maxsize` such hashes; the value is
    kept when the same text is offered again.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._values: OrderedDict[str, V] = OrderedDict()
        self._seen_once: OrderedDict[int, None] = OrderedDict()

    def get(self, text: str) -> V | None:
        value = self._values.get(text)
        if value is not None:
            self._values.move_to_end(text)
        return value

    def offer(self, text: str, value: V) -> None:
        """Keep `value` for `text` if the text was offered before (and is still remembered)."""
        digest = hash(text)
        if digest in self._seen_once:
            del self._seen_once[digest]
            self._values[text] = value
            if len(self._values) > self.maxsize:
                self._values.popitem(last=False)
        else:
            self._seen_once[digest] = None
            if len(self._seen_once) > 8 * self.maxsize:
                self._seen_once.popitem(last=False)
