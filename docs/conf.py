"""Sphinx configuration: the API reference is built from the docstrings of the live module.

`api.rst` is generated at every build from the sections of dynet/_dynet.pyx (its "# ---- Title ----"
comments and the names each section imports or defines), so a public name added there appears in the
reference without editing these files; a public name that no section lists goes to "Other names".
Build: `python -m sphinx -W -b html docs docs/_build` (warnings are errors in CI).
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import dynet  # noqa: E402

project = "dynet-py"
author = "the dynet-py authors"
copyright = "the dynet-py authors; DyNet's API and documentation style by the DyNet authors"
release = dynet.__package_version__
version = release
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
exclude_patterns = ["_build", "architecture.md"]
html_theme = "alabaster"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False


# public submodules, each documented whole after the sections of `dynet`
SUBMODULES = ["dynet.distributed"]


def api_sections():
    """[(title, [names])] in the order of dynet/_dynet.pyx."""
    with open(os.path.join(ROOT, "dynet", "_dynet.pyx"), encoding="utf-8") as f:
        source = f.read()
    parts = re.split(r"^# ---- (.+?) -*$", source, flags=re.M)
    sections = []
    for title, body in zip(parts[1::2], parts[2::2]):
        body = re.sub(r"#.*", "", body)
        names = []
        for imported in re.findall(r"^from \S+ import (\([^)]*\)|.*)$", body, flags=re.M):
            names += [n.strip().split(" as ")[-1] for n in imported.strip("()").replace("\n", " ").split(",")]
        names += re.findall(r"^(?:def|class|cdef class|cpdef \w+) (\w+)", body, flags=re.M)
        names += re.findall(r"^(\w+) = ", body, flags=re.M)
        public = [n for n in dict.fromkeys(names) if n and not n.startswith("_") and n != "*"
                  and hasattr(dynet, n)]
        if public:
            sections.append((title.strip(), public))
    listed = {n for _, names in sections for n in names}
    other = [n for n in sorted(dir(dynet)) if not n.startswith("_") and n not in listed
             and not isinstance(getattr(dynet, n), type(sys))]
    if other:
        sections.append(("Other names", other))
    return sections


def write_api_page():
    lines = ["API reference", "=============", "",
             "``import dynet as dy``: the public names, in the sections of DyNet's own ``_dynet.pyx``.",
             "``dy.__version__`` is the DyNet API level (\"2.1\") that DyNet code checks;",
             "``dy.__package_version__`` is this package's own release number.", "",
             ".. module:: dynet", ""]
    for title, names in api_sections():
        lines += [title, "-" * len(title), ""]
        for n in names:
            obj = getattr(dynet, n)
            if isinstance(obj, type):
                directive = "autoexception" if issubclass(obj, BaseException) else "autoclass"
            elif callable(obj):
                directive = "autofunction"
            else:
                directive = "autodata"
            lines += [f".. {directive}:: {n}", ""]
    for modname in SUBMODULES:
        lines += [modname, "-" * len(modname), "", f".. automodule:: {modname}", "   :members:", ""]
    text = "\n".join(lines)
    path = os.path.join(HERE, "api.rst")
    if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


_SPECIAL = [(re.compile(r"([*|`])"), r"\\\1"), (re.compile(r"(\w)_(?=\W|$)"), r"\1\\_")]


def escape_plain_text(app, what, name, obj, options, lines):
    """Docstrings are written as plain text (DyNet formulas: `W * x`, `|x|`): escape what reST
    would read as markup, before napoleon turns the Args/Returns sections into fields."""
    for i, line in enumerate(lines):
        for pattern, repl in _SPECIAL:
            line = pattern.sub(repl, line)
        lines[i] = line


def setup(app):
    write_api_page()
    app.connect("autodoc-process-docstring", escape_plain_text, priority=100)
