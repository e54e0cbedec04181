"""Citations by key, from docs/references.bib (parsed and formatted by pybtex).

A page cites a work as `[@key]`, several as `[@key1; @key2]`, and points into one
with a locator after a comma: `[@he2016, Table 1]`. The hook turns each
citation into numbered links, `[1, Table 1]`, numbered in the order the page
first cites each work, and ends the page with a "References" section listing
them. The page holding the line `\\full_bibliography` (docs/references.md)
gets every entry instead, sorted by author and year, each with links to the
pages that cite it.

The build fails, naming the page, on an unknown key or a malformed citation;
and naming the entry, on an entry that no page cites or that has neither a
DOI nor an arXiv id nor a `nodoi` field saying why.

mkdocs-bibtex was tried first: it reports an unknown key as a warning that does
not name the page, renders the references as footnotes mixed with the page's
explanatory ones, and its full bibliography is footnotes with back-links to
nowhere, which the strict build's anchor check rejects.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from mkdocs.exceptions import PluginError
from pybtex.database import BibliographyData, Entry, parse_file
from pybtex.plugin import find_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.template import field, sentence

ROOT = Path(__file__).resolve().parent.parent
BIB_FILE = ROOT / "docs" / "references.bib"
FULL_BIBLIOGRAPHY = "\\full_bibliography"
FOOTNOTES_PLACE = "///Footnotes Go Here///"  # Python-Markdown's marker
FOOTNOTE_DEFINITION = re.compile(r"^\[\^[^\]]+\]:", re.MULTILINE)

CITATION = re.compile(r"\[@(?P<body>[^\[\]\n]*)\]")
CITED_WORK = re.compile(r"@(?P<key>[\w:.-]+)(?:\s*,\s*(?P<locator>\S.*?))?")
FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"(`+)(?!`).+?(?<!`)\1", re.DOTALL)
ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}")


@dataclass(frozen=True)
class Citation:
    start: int
    end: int
    works: tuple[tuple[str, str], ...]  # (key, locator or "")


class BookStyle(UnsrtStyle):
    """pybtex's unsrt style, with titles as written in the .bib file.

    unsrt lowercases titles after their first letter ("Imagenet", "Mobilenets")
    unless every proper noun is braced; the .bib keeps titles as published.
    """

    def format_title(self, e, which, as_sentence=True):
        title = field(which)
        return sentence[title] if as_sentence else title


def _masked(markdown: str) -> str:
    """markdown with code blocks and inline code blanked, offsets kept."""

    def blank(match):
        return re.sub(r"[^\n]", " ", match.group(0))

    return INLINE_CODE.sub(blank, FENCE.sub(blank, markdown))


def citations(markdown: str, source: str) -> list[Citation]:
    """The citations on a page, outside code; source names the page in errors."""
    found = []
    for match in CITATION.finditer(_masked(markdown)):
        works = []
        for part in match.group(0)[1:-1].split(";"):
            work = CITED_WORK.fullmatch(part.strip())
            if work is None:
                raise PluginError(
                    f"{source}: malformed citation {match.group(0)!r}; write "
                    "[@key], [@key, locator] or [@key1; @key2]"
                )
            works.append((work["key"], work["locator"] or ""))
        found.append(Citation(match.start(), match.end(), tuple(works)))
    return found


def load(path: Path = BIB_FILE) -> BibliographyData:
    """The bibliography, each entry checked for an identifier."""
    data = parse_file(str(path), bib_format="bibtex")
    for key, entry in data.entries.items():
        problem = _identifier_problem(entry)
        if problem:
            raise PluginError(f"{path.name}: entry {key!r} {problem}")
    return data


def _identifier_problem(entry: Entry) -> str | None:
    fields = entry.fields
    doi, eprint = fields.get("doi", ""), fields.get("eprint", "")
    if doi and not doi.startswith("10."):
        return f"has a malformed DOI {doi!r} (a DOI starts with '10.')"
    if eprint and not ARXIV_ID.fullmatch(eprint):
        return f"has a malformed arXiv id {eprint!r} (write e.g. 1512.03385)"
    if eprint and fields.get("archiveprefix", "").lower() != "arxiv":
        return "has an eprint without archivePrefix = {arXiv}"
    if not (doi or eprint or fields.get("nodoi", "").strip()):
        return (
            "has no identifier: add its doi or arXiv eprint, or a nodoi "
            "field saying why it has neither (and its url or isbn if any)"
        )
    return None


def _unknown(key: str, source: str, data: BibliographyData) -> PluginError:
    close = difflib.get_close_matches(key, list(data.entries), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return PluginError(
        f"{source}: unknown citation key {key!r}{hint}: add it to "
        f"docs/{BIB_FILE.name} or fix the key"
    )


def check_book(docs_dir: Path) -> tuple[BibliographyData, dict[str, list[str]]]:
    """docs_dir's bibliography and who cites what, every citation checked."""
    pages = {
        path.relative_to(docs_dir).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(docs_dir.rglob("*.md"))
    }
    data = load(docs_dir / BIB_FILE.name)
    return data, cited_keys(pages, data)


def cited_keys(pages: dict[str, str], data: BibliographyData) -> dict[str, list[str]]:
    """Key -> the pages citing it (src paths, in the given order), every key
    checked; pages maps a page's src path to its Markdown."""
    cited: dict[str, list[str]] = {}
    for source, markdown in pages.items():
        for citation in citations(markdown, source):
            for key, _ in citation.works:
                if key not in data.entries:
                    raise _unknown(key, source, data)
                if source not in cited.setdefault(key, []):
                    cited[key].append(source)
    uncited = sorted(set(data.entries) - set(cited))
    if uncited:
        raise PluginError(
            f"{BIB_FILE.name}: no page cites {', '.join(uncited)}: cite it "
            "or remove the entry"
        )
    return cited


def _formatted(data: BibliographyData, keys: list[str]) -> dict[str, str]:
    """key -> the entry as HTML (inline), in unsrt style."""
    style, backend = BookStyle(), find_plugin("pybtex.backends", "html")()
    entries = [data.entries[key] for key in keys]
    return {
        entry.key: entry.text.render(backend).replace("\n", " ")
        for entry in style.format_entries(entries)
    }


def _short(entry: Entry) -> str:
    """'LeCun et al., 1998': a citation link's tooltip."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [" ".join(person.last_names) or str(person) for person in people]
    name = names[0] if names else entry.fields.get("title", "")
    if len(names) == 2:
        name = f"{names[0]} and {names[1]}"
    elif len(names) > 2:
        name += " et al."
    return f"{name}, {entry.fields.get('year', 'n.d.')}".replace('"', "'")


def _anchor(key: str) -> str:
    return "ref-" + re.sub(r"[^\w-]", "-", key)


def render_page(
    markdown: str, source: str, data: BibliographyData, cited: dict[str, list[str]]
) -> str:
    """markdown with its citations as numbered links and, if it cites any, a
    closing References section; the page with FULL_BIBLIOGRAPHY lists all."""
    found = citations(markdown, source)
    numbers: dict[str, int] = {}
    for citation in found:
        for key, _ in citation.works:
            if key not in data.entries:
                raise _unknown(key, source, data)
            numbers.setdefault(key, len(numbers) + 1)
    pieces, last = [], 0
    for citation in found:
        links = []
        for key, locator in citation.works:
            link = f'[{numbers[key]}](#{_anchor(key)} "{_short(data.entries[key])}")'
            links.append(f"{link}, {locator}" if locator else link)
        pieces += [markdown[last : citation.start], r"\[" + "; ".join(links) + r"\]"]
        last = citation.end
    markdown = "".join(pieces) + markdown[last:]
    if FULL_BIBLIOGRAPHY in markdown:
        return markdown.replace(FULL_BIBLIOGRAPHY, _full_list(data, cited))
    if not numbers:
        return markdown
    texts = _formatted(data, list(numbers))
    items = "\n".join(
        f"{n}. {texts[key]}\n    {{: #{_anchor(key)} }}" for key, n in numbers.items()
    )
    # The page's explanatory footnotes go before its references, which end it.
    # Search leaves the section out: the References page holds every entry.
    footnotes = FOOTNOTES_PLACE if FOOTNOTE_DEFINITION.search(markdown) else ""
    return (
        f"{markdown.rstrip()}\n\n{footnotes}\n\n"
        "## References {#references data-search-exclude}\n\n"
        '<div class="references" markdown>\n\n'
        f"{items}\n\n</div>\n"
    )


def _page_label(source: str) -> str:
    number = re.match(r"(\d+)-", source)
    return f"chapter {int(number.group(1))}" if number else source.removesuffix(".md")


def _full_list(data: BibliographyData, cited: dict[str, list[str]]) -> str:
    """Every entry, sorted by author, year and title, with the pages citing it."""
    sorting = find_plugin("pybtex.style.sorting", "author_year_title")()

    def unbraced_key(entry):  # BibTeX's braces would file {UXL Foundation} after Z
        return [
            str(part).replace("{", "").replace("}", "")
            for part in sorting.sorting_key(entry)
        ]

    ordered = [entry.key for entry in sorted(data.entries.values(), key=unbraced_key)]
    texts = _formatted(data, ordered)
    items = []
    for key in ordered:
        pages = ", ".join(
            f"[{_page_label(page)}]({page}#{_anchor(key)})"
            for page in sorted(cited.get(key, []))
        )
        items.append(f"- {texts[key]} Cited in {pages}.\n    {{: #{_anchor(key)} }}")
    return '<div class="references" markdown>\n\n' + "\n".join(items) + "\n\n</div>"
