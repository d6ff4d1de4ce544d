"""mms.utils: the standard-library-only helpers handlers import (the MXNet helpers are not provided)."""
