"""Escape the reST that plain-text docstrings write by accident, before numpydoc.

The docstrings are read in terminals as often as on this site and write shapes and
attributes the way code does: ``(n_samples, *spatial)`` opens an emphasis that never
closes, and ``n_features_in_`` in a sentence is a reference to an undefined target.
With warnings as errors each would fail the build. This hook (run on every docstring
before numpydoc parses it) escapes exactly those two patterns outside literals and
roles: a ``*`` before a name with no closing ``*`` on the line, and a trailing
underscore of a word that is not the name of a numpydoc ``name : type`` line.
"""

import re

# ``literal``, :role:`target`, `interpreted` and inline math stay as they are.
_PROTECTED = re.compile(r"(``.+?``|:[\w:.-]+:`[^`]*`|`[^`]*`_?_?)")
_DEFINITION = re.compile(r"^\s*\*{0,2}[\w, *]+\s+:\s")  # "name : " of numpydoc
_STAR = re.compile(r"(?<![\\*\w])(\*{1,2})(?=[A-Za-z_(])")
_TRAILING = re.compile(r"(?<=\w)_(?=[\s,.;:)\]}]|$)")


def _escape_text(text):
    if _STAR.search(text):
        # an emphasis that closes on this line (*word* or **word**) is meant
        if not re.search(r"(?<![\\*\w])\*{1,2}[^\s*][^*]*?(?<=[^\s*\\])\*{1,2}(?![\w*])", text):
            text = _STAR.sub(lambda m: "\\*" * len(m.group(1)), text)
    return _TRAILING.sub(r"\\_", text)


def escape_line(line):
    """One docstring line with stray emphasis starts and reference ends escaped."""
    if line.lstrip().startswith((">>>", "...", "..")):
        return line
    definition = _DEFINITION.match(line)
    if definition:  # numpydoc reads the name itself: escape the type only
        head = definition.group(0)
        return head + escape_line(line[len(head):])
    parts = _PROTECTED.split(line)
    # split() with one group: even indices are text, odd ones protected spans
    return "".join(part if i % 2 else _escape_text(part) for i, part in enumerate(parts))


def _indent(line):
    return len(line) - len(line.lstrip())


def escape_docstring(app, what, name, obj, options, lines):
    """``autodoc-process-docstring`` handler: edit ``lines`` in place."""
    literal_indent = None  # inside a literal block ("::") deeper than this
    for i, line in enumerate(lines):
        if literal_indent is not None:
            if not line.strip() or _indent(line) > literal_indent:
                continue
            literal_indent = None
        if line.rstrip().endswith("::"):
            literal_indent = _indent(line)
        lines[i] = escape_line(line)


def setup(app):
    # before numpydoc (priority 500), which parses the sections
    app.connect("autodoc-process-docstring", escape_docstring, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
