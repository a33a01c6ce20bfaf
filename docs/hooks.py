"""MkDocs hook: the results page is ``BENCHMARKS.md``, and the config reference is generated from ``tf_crnn.config.Params`` (its fields,
defaults and the docstring under each), so it cannot drift from the code."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from pathlib import Path

MARKER = "<!-- config-reference -->"
BENCHMARKS_MARKER = "<!-- benchmarks -->"


def _sections_and_docs(cls) -> list[tuple[str, list[tuple[str, str]]]]:
    """``[(section, [(field, docstring)])]`` in source order; sections are the ``# --- X ---`` comments."""
    source = inspect.getsource(cls)
    lines = source.splitlines()
    body = ast.parse(source).body[0].body
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    last_line = 0
    for i, node in enumerate(body):
        if not isinstance(node, ast.AnnAssign):
            continue
        for line in lines[last_line : node.lineno - 1]:
            text = line.strip()
            if text.startswith("# ---") and text.endswith("---"):
                sections.append((text.strip("#- ").replace("``", "`"), []))
        last_line = node.lineno
        after = body[i + 1] if i + 1 < len(body) else None
        doc = ""
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            doc = inspect.cleandoc(after.value.value)
        if not sections:
            sections.append(("General", []))
        sections[-1][1].append((node.target.id, doc))
    return sections


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "—"
    if value is None:
        return "—"
    return "`" + json.dumps(value, ensure_ascii=False).replace("|", "\\|") + "`"


def config_reference() -> str:
    from tf_crnn.config import Params

    fields = {f.name: f for f in dataclasses.fields(Params)}
    out = []
    for section, entries in _sections_and_docs(Params):
        out += [f"## {section}", "", "| key | default | meaning |", "|---|---|---|"]
        for name, doc in entries:
            meaning = " ".join(doc.split()).replace("``", "`").replace("|", "\\|")
            out.append(f"| `{name}` | {_default(fields[name])} | {meaning} |")
        out.append("")
    return "\n".join(out)


def benchmarks() -> str:
    """``BENCHMARKS.md``, the one page of current figures, with its picture paths made relative to here."""
    text = (Path(__file__).resolve().parents[1] / "BENCHMARKS.md").read_text(encoding="utf-8")
    return text.replace("`docs/images/", "`images/")


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = markdown.replace(MARKER, config_reference()) if MARKER in markdown else markdown
    return markdown.replace(BENCHMARKS_MARKER, benchmarks()) if BENCHMARKS_MARKER in markdown else markdown
