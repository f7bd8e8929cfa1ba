"""Result writers of the TAP service: VOTable (TABLEDATA, BINARY2), CSV, TSV, FITS, Parquet and JSON.

Each format streams a result in bounded memory: the service asks
:func:`resolve_format` for the format a client named, gets a writer from
:meth:`ResultFormat.writer` and sends what ``begin``, ``write_rows`` and
``finish`` return.
"""

from .base import ResultFormat, ResultInfo, ResultWriter
from .registry import DEFAULT_FORMAT, FORMATS, UnknownFormatError, resolve_format
from .values import vouched_text_columns
from .votable import votable_error_document

__all__ = [
    "DEFAULT_FORMAT",
    "FORMATS",
    "ResultFormat",
    "ResultInfo",
    "ResultWriter",
    "UnknownFormatError",
    "resolve_format",
    "votable_error_document",
    "vouched_text_columns",
]
