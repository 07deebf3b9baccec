"""slmqa.serving.documents: reading each supported format, skipping the rest, passages with document offsets."""

from __future__ import annotations

import pytest

from slmqa.serving.documents import Document, DocumentError, html_to_text, passages_of, read_folder, split_passages
from tests.document_helpers import MANUAL, POLICY, document_folder


def test_reads_every_supported_format_and_skips_the_rest(tmp_path):
    documents, report = read_folder(document_folder(tmp_path))
    texts = {d.name: d.text for d in documents}
    assert set(texts) == {"manual.txt", "sub/policy.md", "page.html", "fans.json#Fans", "fans.json#Fans/2", "valve.pdf"}
    assert texts["manual.txt"] == MANUAL
    assert POLICY in texts["sub/policy.md"]
    assert "12 bar" in texts["page.html"] and "secret" not in texts["page.html"] and "color" not in texts["page.html"]
    assert texts["fans.json#Fans"] == "The F-2 fan turns at 900 rpm."
    assert "V-4 valve opens at 6 bar" in texts["valve.pdf"]
    assert report.skipped == {"unsupported type": 1, "empty": 1}
    assert report.documents == 6


def test_broken_files_are_skipped_not_fatal(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text("Fine text.", encoding="utf-8")
    (folder / "broken.json").write_text("{not json", encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (folder / "latin.txt").write_bytes("caf\xe9 open".encode("latin-1"))
    documents, report = read_folder(folder)
    assert {d.name for d in documents} >= {"good.txt", "latin.txt"}
    assert report.skipped["unreadable"] >= 1


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DocumentError, match="not found"):
        read_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DocumentError, match="No readable document"):
        read_folder(tmp_path / "empty")


def test_html_text_keeps_blocks_apart():
    assert html_to_text("<p>One</p><p>Two &amp; three</p>") == "One\nTwo & three"


@pytest.mark.parametrize("words, overlap", [(5, 2), (7, 0), (100, 25), (3, 2)])
def test_passages_cover_the_document_with_exact_offsets(words, overlap):
    document = Document("d", "  " + " ".join(f"w{i}" for i in range(23)) + "\n end ")
    passages = split_passages(document, words, overlap)
    for passage in passages:
        assert document.text[passage.start : passage.end] == passage.text
        assert len(passage.text.split()) <= words
    assert passages[0].start == 2 and passages[-1].end == len(document.text) - 1
    for before, after in zip(passages, passages[1:]):
        shared = set(before.text.split()) & set(after.text.split())
        assert len(shared) == overlap and after.start > before.start


def test_passage_arguments_are_checked():
    with pytest.raises(ValueError):
        split_passages(Document("d", "a b"), words=3, overlap=3)


def test_passages_of_keeps_document_order():
    documents = [Document("a", "one two three"), Document("b", "four")]
    assert [(p.document, p.text) for p in passages_of(documents, 2, 1)] == [("a", "one two"), ("a", "two three"), ("b", "four")]


def test_markdown_markup_does_not_show_in_the_text():
    from slmqa.serving.documents import markdown_to_text

    markdown = (
        "# Remote work #\n\nEmployees may work **from home** two days a week ([the form](http://x.org/f)).\n\n"
        "- Requests go to the *team lead*.\n> Quoted: hall 2.\n\n| Day | Office |\n|---|---|\n| Mon | Hall 2 |\n\n---\n"
        "![office plan](plan.png)\n```\nkeep = `code`\n```\n[ref]: http://example.org\nsnake_case and 2*3*4 stay &amp; <b>bold</b>\n"
    )
    text = markdown_to_text(markdown)
    assert text.splitlines()[0] == "Remote work"
    assert "Employees may work from home two days a week (the form)." in text
    assert "Requests go to the team lead." in text and "Quoted: hall 2." in text and "Mon  Hall 2" in text
    assert "office plan" in text and "keep = `code`" in text and "snake_case and 2*3*4 stay & bold" in text
    for markup in ("**", "](", "# ", "> ", "|", "---", "http://example.org", "<b>"):
        assert markup not in text, markup


def test_pdf_pages_are_known_by_offset(tmp_path):
    from tests.document_helpers import minimal_pdf

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "manual.pdf").write_bytes(minimal_pdf("The V-4 valve opens at 6 bar.", "The P-9 pump delivers 12 bar."))
    (document,), _ = read_folder(folder)
    assert document.page_starts == (0, document.text.index("The P-9"))
    assert document.page_of(document.text.index("6 bar")) == 1 and document.page_of(document.text.index("12 bar")) == 2
    assert Document("a.txt", "no pages").page_of(3) is None
