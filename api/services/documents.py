"""Reading an uploaded file into text, before anything is stored: a file that is not what its
extension says, that cannot be read, or that holds no text is refused (a 4xx with its own
``code``), so a refused upload stores nothing.

``.txt`` and ``.md``: UTF-8 (a BOM allowed), no NUL. ``.pdf``: starts with ``%PDF-``, read with
pypdf. ``.docx``: a zip holding ``word/document.xml``, read with python-docx (paragraphs and
tables). ``.html``/``.htm``: UTF-8 text, converted to Markdown-ish text with html2text.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass
from pathlib import PurePath
from typing import Final

from api.errors import InvalidInput, UnsupportedMediaType

log = logging.getLogger(__name__)

MEDIA_TYPES: Final = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".html": "text/html",
    ".htm": "text/html",
}
# A .docx is a zip: refuse one whose parts would inflate past this (a zip bomb).
MAX_DOCX_INFLATED = 200 * 1_048_576
# PDF pages read at most (a 10 MiB PDF of empty pages could have hundreds of thousands).
MAX_PDF_PAGES = 5000


@dataclass(frozen=True)
class Parsed:
    media_type: str
    text: str


def unparseable(detail: str) -> InvalidInput:
    return InvalidInput(detail, code="unparseable_document")


def _decode(data: bytes, kind: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise unparseable(f"This {kind} file is not UTF-8 text") from None
    if "\x00" in text:
        raise unparseable(f"This {kind} file holds NUL characters: it is not text")
    return text


def _pdf(data: bytes) -> str:
    if not data.startswith(b"%PDF-"):
        raise unparseable("This .pdf file is not a PDF (it does not start with %PDF-)")
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise unparseable("This PDF is encrypted")
        pages = []
        for number, page in enumerate(reader.pages):
            if number >= MAX_PDF_PAGES:
                break
            pages.append(page.extract_text() or "")
    except InvalidInput:
        raise
    except Exception as exc:
        log.info("unreadable PDF: %s", type(exc).__name__)
        raise unparseable("This PDF could not be read") from None
    return "\n\n".join(pages)


def _docx(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise unparseable("This .docx file is not a Word document (not a zip archive)") from None
    if "word/document.xml" not in names:
        raise unparseable("This .docx file is not a Word document (no word/document.xml)")
    if inflated > MAX_DOCX_INFLATED:
        raise unparseable("This .docx file inflates to more than 200 MiB")
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        parts = [paragraph.text for paragraph in document.paragraphs]
        for table in document.tables:
            for row in table.rows:
                parts.append(" | ".join(cell.text for cell in row.cells))
    except Exception as exc:
        log.info("unreadable docx: %s", type(exc).__name__)
        raise unparseable("This Word document could not be read") from None
    return "\n".join(parts)


def _html(data: bytes) -> str:
    import html2text

    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_links = True
    try:
        return converter.handle(_decode(data, ".html"))
    except InvalidInput:
        raise
    except Exception as exc:
        log.info("unreadable HTML: %s", type(exc).__name__)
        raise unparseable("This HTML file could not be read") from None


def parse(filename: str, data: bytes) -> Parsed:
    """The text of an uploaded file; 415 ``unsupported_media_type`` for an extension not read
    here, 422 ``unparseable_document`` for a file that is not what it says or cannot be read,
    422 ``empty_document`` for one with no text. CPU-bound: call it off the event loop."""
    suffix = PurePath(filename).suffix.lower()
    media_type = MEDIA_TYPES.get(suffix)
    if media_type is None:
        accepted = ", ".join(sorted(set(MEDIA_TYPES) - {".htm"}))
        raise UnsupportedMediaType(f"Unsupported file type {suffix or '(none)'!r}: use {accepted}")
    if suffix == ".pdf":
        text = _pdf(data)
    elif suffix == ".docx":
        text = _docx(data)
    elif media_type == "text/html":
        text = _html(data)
    else:
        text = _decode(data, suffix)
    return Parsed(media_type, checked_text(text))


def checked_text(text: str) -> str:
    """The text to store: without NUL (Postgres text cannot hold it); 422 ``empty_document``
    when nothing but whitespace is left."""
    text = text.replace("\x00", "")
    if not text.strip():
        raise InvalidInput("The document has no text", code="empty_document")
    return text
