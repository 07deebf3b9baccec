"""Read a folder of documents into plain text and cut it into overlapping passages.

The reader answers with character offsets, so every document is reduced to one plain
text first, and offsets refer to that text (for HTML and PDF: the extracted text, not the
markup or the file's bytes). Passages are word windows with an overlap, so that an answer
near a boundary is whole in at least one passage; each passage remembers where it starts
in its document, which turns an answer's passage offsets into document offsets.

Supported: .txt, .md (markup removed), .html/.htm (visible text), SQuAD-format .json/.jsonl
(each distinct context is a document) and .pdf (with pypdf; each page's start is kept, so an
answer can name its page). Other files are skipped and counted.
"""

from __future__ import annotations

import bisect
import html
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
MARKDOWN_SUFFIXES = (".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
JSON_SUFFIXES = (".json", ".jsonl")
PDF_SUFFIXES = (".pdf",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + JSON_SUFFIXES + PDF_SUFFIXES
# A bigger file is almost certainly not a document meant to be read (a data dump, a log).
MAX_FILE_BYTES = 64 * 1024 * 1024
WORD = re.compile(r"\S+")


class DocumentError(ValueError):
    """The folder cannot be indexed (missing, or holds no readable document)."""


@dataclass(frozen=True)
class Document:
    """One document: a stable name (its path in the folder, plus '#title' for JSON contexts) and its text.

    `page_starts`: for a PDF, the offset in `text` where each page begins (page 1 at 0).
    """

    name: str
    text: str
    page_starts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "page_starts", tuple(self.page_starts))  # a list when read back from JSON

    def page_of(self, offset: int) -> int | None:
        """The 1-based page holding character `offset`, or None for a document without pages."""
        if not self.page_starts:
            return None
        return bisect.bisect_right(self.page_starts, offset)


@dataclass(frozen=True)
class Passage:
    """`text` is `document.text[start:end]`; `start` maps passage offsets back to the document."""

    document: str
    start: int
    end: int
    text: str
    page_starts: tuple[int, ...] = field(default=(), compare=False, repr=False)  # the document's (PDF) pages

    def page_of(self, offset: int) -> int | None:
        """The 1-based page of a document offset inside this passage; None when the document has no pages."""
        return bisect.bisect_right(self.page_starts, offset) if self.page_starts else None


@dataclass
class FolderReport:
    """What indexing a folder did, for the log and /health."""

    documents: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> files


# ---------------------------------------------------------------- per-format text extraction


def _decode(data: bytes, name: str) -> str:
    """UTF-8 (with or without BOM); other bytes are replaced rather than refusing the file."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        logger.warning("%s is not UTF-8; undecodable bytes replaced", name)
        return data.decode("utf-8", errors="replace")


class _TextOfHtml(HTMLParser):
    """Visible text of an HTML page: no script/style, a line break at block boundaries."""

    SKIP = {"script", "style", "noscript", "template", "head"}
    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Readable text of an HTML page, whitespace tidied line by line (offsets refer to this text)."""
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in html.unescape("".join(parser.parts)).splitlines())
    return "\n".join(line for line in lines if line)


def pdf_to_text(path: Path) -> tuple[str, tuple[int, ...]]:
    """Text of every page (pypdf, pure Python), pages separated by a blank line, and where each page starts."""
    from pypdf import PdfReader

    pages = [(page.extract_text() or "").strip() for page in PdfReader(str(path)).pages]
    starts, offset = [], 0
    for text in pages:
        starts.append(offset)
        offset += len(text) + 2
    return "\n\n".join(pages), tuple(starts)


MD_FENCE = re.compile(r"^\s*(```|~~~)")
MD_RULE = re.compile(r"^\s*([-*_=])(\s*\1){2,}\s*$")  # ---, ***, ___ and setext underlines
MD_TABLE_DIVIDER = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
MD_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s+\S+")
MD_LINE_MARKERS = re.compile(r"^\s{0,3}(#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)+")
MD_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images: their alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links: their text
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # reference links
    (re.compile(r"<(https?://[^>\s]+)>"), r"\1"),  # autolinks
    (re.compile(r"</?[A-Za-z][^>]*>"), ""),  # inline HTML tags
    (re.compile(r"`+([^`]+)`+"), r"\1"),  # code spans
    (re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # strong, strike-through
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),  # *emphasis*
    (re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),  # _emphasis_
]


def markdown_to_text(markdown: str) -> str:
    """The readable text of Markdown: no heading, list, quote or table markers, links as their text.

    Answers are shown in their passage, so markup there is noise; offsets refer to this text.
    Code blocks keep their content; HTML entities are decoded.
    """
    lines, in_code = [], False
    for line in markdown.splitlines():
        if MD_FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            lines.append(line.rstrip())
            continue
        if MD_RULE.match(line) or MD_TABLE_DIVIDER.match(line) or MD_REFERENCE.match(line):
            continue
        line = MD_LINE_MARKERS.sub("", line)
        if "|" in line and line.strip().startswith("|"):
            line = "  ".join(cell.strip() for cell in line.strip().strip("|").split("|"))
        for pattern, replacement in MD_INLINE:
            line = pattern.sub(replacement, line)
        line = re.sub(r"\s#+\s*$", "", line)  # closing hashes of a heading
        lines.append(html.unescape(line.rstrip()))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _titled_contexts(path: Path) -> list[tuple[str, object]]:
    """(title, context) of every paragraph: nested SQuAD directly (also paragraphs without questions), else flat records."""
    from slmqa.data.formats import read_records

    if path.suffix.lower() == ".json":
        content = json.loads(path.read_text(encoding="utf-8-sig"))
        articles = content.get("data") if isinstance(content, dict) else content
        if isinstance(articles, list) and articles and isinstance(articles[0], dict) and "paragraphs" in articles[0]:
            return [
                (article.get("title"), paragraph.get("context"))
                for article in articles
                for paragraph in article.get("paragraphs", [])
                if isinstance(paragraph, dict)
            ]
    return [(r.get("title"), r.get("context")) for r in read_records(path) if isinstance(r, dict)]


def squad_contexts(path: Path, name: str) -> list[Document]:
    """Each distinct context of a SQuAD-format file as a document named 'file#title' ('#title/2', ... on repeats)."""
    documents, seen, per_title = [], set(), Counter()
    for index, (title, context) in enumerate(_titled_contexts(path)):
        if not isinstance(context, str) or not context.strip() or context in seen:
            continue
        seen.add(context)
        title = str(title or f"context-{index}")
        per_title[title] += 1
        suffix = "" if per_title[title] == 1 else f"/{per_title[title]}"
        documents.append(Document(f"{name}#{title}{suffix}", context))
    return documents


def read_file(path: Path, name: str) -> list[Document]:
    """The documents in one file (several for SQuAD JSON); [] for an empty one."""
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        return squad_contexts(path, name)
    page_starts: tuple[int, ...] = ()
    if suffix in PDF_SUFFIXES:
        text, page_starts = pdf_to_text(path)
    else:
        text = _decode(path.read_bytes(), name)
        if suffix in HTML_SUFFIXES:
            text = html_to_text(text)
        elif suffix in MARKDOWN_SUFFIXES:
            text = markdown_to_text(text)
    return [Document(name, text, page_starts)] if text.strip() else []


# ---------------------------------------------------------------- folders


def _candidate_files(folder: Path) -> list[Path]:
    """Every regular file below `folder` in a stable order, hidden files and folders left out."""
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        files.append(path)
    return files


def folder_files(folder: str | Path) -> list[tuple[Path, str]]:
    """(path, name) of every file the folder offers, names relative to it; a missing folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DocumentError(f"Documents folder not found: {folder}")
    return [(path, path.relative_to(folder).as_posix()) for path in _candidate_files(folder)]


def read_one(path: Path, name: str) -> tuple[list[Document], str | None]:
    """The documents of one file, or none and the reason it is skipped (unsupported, too large, unreadable, empty)."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        return [], "unsupported type"
    if path.stat().st_size > MAX_FILE_BYTES:
        logger.warning("Skipping %s: larger than %d MB", name, MAX_FILE_BYTES // 2**20)
        return [], "too large"
    try:
        found = read_file(path, name)
    except Exception as err:  # a broken PDF or JSON must not stop the whole folder
        logger.warning("Skipping %s: %s", name, err)
        return [], "unreadable"
    return (found, None) if found else ([], "empty")


def read_folder(folder: str | Path) -> tuple[list[Document], FolderReport]:
    """All readable documents below `folder`; unreadable or unsupported files are skipped and counted."""
    documents: list[Document] = []
    report = FolderReport()
    for path, name in folder_files(folder):
        found, skipped = read_one(path, name)
        if skipped:
            report.skipped[skipped] += 1
        documents.extend(found)
    report.documents = len(documents)
    if not documents:
        raise DocumentError(f"No readable document in {folder} (supported: {', '.join(SUPPORTED_SUFFIXES)}).")
    logger.info("Read %d documents from %s (skipped: %s)", len(documents), folder, dict(report.skipped) or "none")
    return documents, report


# ---------------------------------------------------------------- passages


def split_passages(document: Document, words: int = 100, overlap: int = 25) -> list[Passage]:
    """Windows of `words` words, each starting `words - overlap` words after the previous one.

    Offsets are character offsets in the document; the last window always reaches the end.
    """
    if words < 1 or not 0 <= overlap < words:
        raise ValueError(f"Need words >= 1 and 0 <= overlap < words; got {words}, {overlap}.")
    spans = [match.span() for match in WORD.finditer(document.text)]
    passages = []
    step = words - overlap
    for first in range(0, max(1, len(spans) - overlap), step):
        chunk = spans[first : first + words]
        if not chunk:
            break
        start, end = chunk[0][0], chunk[-1][1]
        passages.append(Passage(document.name, start, end, document.text[start:end], document.page_starts))
    return passages


def passages_of(documents: list[Document], words: int = 100, overlap: int = 25) -> list[Passage]:
    """The passages of every document, in document order."""
    return [passage for document in documents for passage in split_passages(document, words, overlap)]
