"""quantdesk: research-to-production platform for crypto quant teams."""

from quantdesk.errors import QuantdeskError

__all__ = ["QuantdeskError", "__version__"]
__version__ = "0.1.0"
