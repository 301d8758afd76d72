"""quantdesk: research-to-production platform for crypto quant teams."""

import sys

from quantdesk.errors import QuantdeskError

# vectorbt imports plotly's FigureWidget, which imports nbformat and so jsonschema, which
# imports rfc3987_syntax if installed only to check the "iri" string format: that module builds
# a Lark grammar at import, 2.6 s of every CLI start, session restart and spawned worker.
# Nothing here validates IRIs; marking the module absent makes jsonschema skip that format.
# A process that imported it already (or imports it first) keeps it.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

__all__ = ["QuantdeskError", "__version__"]
__version__ = "0.1.0"
