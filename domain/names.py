"""The syntax of UIDs and of names, shared by enrolment, the handshake checks and the contracts.

A UID has letters, digits and . _ @ - only, so it never holds the "/" of ORG/UID
keys, nor spaces, homoglyphs, zero-width or line-breaking characters that make
two UIDs look alike. A name holds no control characters, line breaks or
bidirectional formatting characters.
"""

from __future__ import annotations

import re

# The bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) make a
# reader see text in another order than it is stored; U+2028 and U+2029 break lines.
BIDI_AND_SEPARATORS = "\u202a-\u202e\u2066-\u2069\u2028\u2029"

UID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

# C0, DEL and C1 controls (line breaks included): they forge lines in logs and terminals.
NAME_REFUSED = re.compile(f"[\x00-\x1f\x7f-\x9f{BIDI_AND_SEPARATORS}]")
