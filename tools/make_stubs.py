"""Write the type stubs of `import dynet` (dynet/__init__.pyi) from the live module.

    python tools/make_stubs.py          # rewrite dynet/__init__.pyi
    python tools/make_stubs.py --check  # exit 1 if the committed stubs differ from the module

Every public name of `dynet` is written with the signature `inspect.signature` gives at run time (the
Cython classes carry theirs in their docstrings), so editors complete `dy.` and show argument names.
Argument types are left open (DyNet accepts numbers, lists, arrays and expressions in many places);
return types come from OVERRIDES and from where a function lives (dynet/nodes: an Expression). CI
checks the result against the module with `python -m mypy.stubtest dynet`.
"""
import inspect
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
STUB = os.path.join(ROOT, "dynet", "__init__.pyi")
# the public modules and their stub files: `dynet` itself, and its public submodules
STUBS = {"dynet": STUB, "dynet.distributed": os.path.join(ROOT, "dynet", "distributed.pyi")}

# Return types the rule by module cannot know: name (or Class.method) -> annotation.
OVERRIDES = {
    "renew_cg": "None", "cg_version": "int", "cg_checkpoint": "None", "cg_revert": "None",
    "print_graphviz": "None", "print_text_graphviz": "None", "render_graph": "GraphDrawing",
    "cg": "ComputationGraph", "parameter": "Any", "const_parameter": "Any",
    "lookup": "Expression", "lookup_batch": "Expression", "const_lookup": "Expression",
    "npvalues": "list[numpy.ndarray]", "values": "list[Any]", "forward": "None",
    "save": "None", "load": "list[Any]", "set_blas_threads": "None", "init": "None",
    "init_from_params": "None", "reset_random_seed": "None",
    "Expression.npvalue": "numpy.ndarray", "Expression.scalar_value": "float",
    "Expression.vec_value": "list[float]", "Expression.dim": "tuple[tuple[int, ...], int]",
    "Expression.gradient": "numpy.ndarray", "Expression.backward": "None",
    "Parameters.as_array": "numpy.ndarray", "Parameters.grad_as_array": "numpy.ndarray",
    "Parameters.expr": "Expression", "Parameters.npvalue": "numpy.ndarray",
    "LookupParameters.as_array": "numpy.ndarray", "LookupParameters.grad_as_array": "numpy.ndarray",
    "LookupParameters.expr": "Expression", "LookupParameters.batch": "Expression",
    "LookupParameters.__getitem__": "Expression",
    "ParameterCollection.add_parameters": "Parameters",
    "ParameterCollection.add_lookup_parameters": "LookupParameters",
    "ParameterCollection.parameters_from_numpy": "Parameters",
    "ParameterCollection.lookup_parameters_from_numpy": "LookupParameters",
    "ParameterCollection.add_subcollection": "ParameterCollection",
    "ParameterCollection.parameters_list": "list[Parameters]",
    "ParameterCollection.lookup_parameters_list": "list[LookupParameters]",
    "Trainer.update": "None",
}
EXPRESSION_MODULES = ("dynet.nodes.",)
# Operators and protocol methods worth showing (the rest of the dunder methods are left out).
DUNDERS = {"__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
           "__rtruediv__", "__neg__", "__pow__", "__getitem__", "__len__", "__iter__", "__call__",
           "__rpow__", "__init__", "__new__", "__array_ufunc__"}


def params_text(sig):
    out, star = [], False
    kinds = inspect.Parameter
    for i, p in enumerate(sig.parameters.values()):
        if p.kind == kinds.VAR_POSITIONAL:
            out.append("*" + p.name)
            star = True
            continue
        if p.kind == kinds.VAR_KEYWORD:
            out.append("**" + p.name)
            continue
        if p.kind == kinds.KEYWORD_ONLY and not star:
            out.append("*")
            star = True
        text = p.name + (" = ..." if p.default is not inspect.Parameter.empty else "")
        out.append(text)
        if p.kind == kinds.POSITIONAL_ONLY and (i + 1 == len(sig.parameters) or list(
                sig.parameters.values())[i + 1].kind != kinds.POSITIONAL_ONLY):
            out.append("/")
    return ", ".join(out)


def returns(qualname, obj):
    if qualname in OVERRIDES:
        return OVERRIDES[qualname]
    if "." not in qualname and getattr(obj, "__module__", "").startswith(EXPRESSION_MODULES):
        return "Expression"
    return "Any"


def function_stub(name, qualname, obj, indent=""):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return [f"{indent}def {name}(*args: Any, **kwargs: Any) -> Any: ..."]
    ret = "None" if name == "__init__" else returns(qualname, obj)
    return [f"{indent}def {name}({params_text(sig)}) -> {ret}: ..."]


def disjoint_base(cls):
    """Whether instances have a layout of their own (a Cython class with C fields: PEP 800)."""
    base = cls.__base__
    heap_type = cls.__flags__ & (1 << 9)          # Python classes; Cython's are static types
    return base is not None and not heap_type and (
        cls.__basicsize__ != base.__basicsize__ or cls.__itemsize__ != base.__itemsize__)


def class_stub(name, cls, known):
    bases = [b.__name__ for b in cls.__bases__ if b.__name__ in known and b is not object]
    lines = ["@disjoint_base"] if disjoint_base(cls) else []
    lines += [f"class {name}({', '.join(bases)}):" if bases else f"class {name}:"]
    body = []
    # a Cython class's signature is its docstring's text signature (inspect cannot see its __init__);
    # a Python class states its own __init__ or inherits it
    if "__init__" not in vars(cls) and not cls.__flags__ & (1 << 9):
        try:
            sig = inspect.signature(cls)
            body.append(f"    def __init__(self{', ' if sig.parameters else ''}{params_text(sig)}) -> None: ...")
        except (TypeError, ValueError):
            pass
    for mn, mo in vars(cls).items():
        if mn.startswith("_") and mn not in DUNDERS:
            continue
        if mn == "__new__" and not isinstance(mo, staticmethod):
            continue                      # a Cython class's slot: its signature is the class's
        qual = f"{name}.{mn}"
        if isinstance(mo, property):
            body += ["    @property", f"    def {mn}(self) -> {OVERRIDES.get(qual, 'Any')}: ..."]
            if mo.fset is not None:
                body += [f"    @{mn}.setter", f"    def {mn}(self, value: Any) -> None: ..."]
        elif isinstance(mo, classmethod):
            body += ["    @classmethod"] + function_stub(mn, qual, mo.__func__, "    ")
        elif isinstance(mo, staticmethod):
            body += ["    @staticmethod"] + function_stub(mn, qual, mo.__func__, "    ")
        elif mn == "__init__" and inspect.isclass(cls) and not inspect.isfunction(mo):
            try:
                sig = inspect.signature(cls)
                body.append(f"    def __init__(self{', ' if sig.parameters else ''}{params_text(sig)}) -> None: ...")
            except (TypeError, ValueError):
                pass
        elif callable(mo):
            body += function_stub(mn, qual, mo, "    ")
        elif mo is None:                  # (Expression.__array_ufunc__ = None: NumPy defers)
            body.append(f"    {mn}: None")
        elif type(mo).__name__ in ("getset_descriptor", "member_descriptor"):
            body.append(f"    {mn}: Any")
        elif not mn.startswith("_"):
            body.append(f"    {mn}: Any")
    return lines + (body or ["    ..."])


def public_names(module):
    """The module's __all__, else its names without a leading underscore that are not modules and,
    for a submodule, are defined there (not imported from elsewhere)."""
    if hasattr(module, "__all__"):
        return sorted(module.__all__)
    names = [n for n in dir(module) if not n.startswith("_") and not inspect.ismodule(getattr(module, n))]
    if module.__name__ != "dynet":
        names = [n for n in names if getattr(getattr(module, n), "__module__", module.__name__) == module.__name__]
    return sorted(names)


def generate(modname="dynet"):
    import importlib
    module = importlib.import_module(modname)
    names = public_names(module)
    classes = {n: getattr(module, n) for n in names if inspect.isclass(getattr(module, n))}
    primary = {}                 # a class object -> the name it is defined under (others are aliases)
    for n, cls in classes.items():
        if cls.__name__ == n or cls not in primary:
            primary[cls] = n if cls.__name__ == n else primary.get(cls, n)
    out = [f'"""Type stubs of `import {modname}` (generated by tools/make_stubs.py from the live module: do',
           'not edit; rerun the script after changing the public API)."""',
           "from typing import Any", "", "import numpy", "from typing_extensions import disjoint_base", ""]
    if modname == "dynet":
        out += ["__version__: str", "__package_version__: str", ""]
    if hasattr(module, "__all__"):
        out += [f"__all__ = {sorted(module.__all__)!r}", ""]
    # classes first, bases before subclasses
    done = set()

    def emit(cls):
        if cls in done:
            return
        for b in cls.__bases__:
            if b in primary:
                emit(b)
        done.add(cls)
        out.extend(class_stub(primary[cls], cls, set(primary.values())))
        out.append("")

    for n in names:
        if n in classes and primary[classes[n]] == n:
            emit(classes[n])
    for n in names:
        obj = getattr(module, n)
        if n in classes:
            if primary[obj] != n:
                out.append(f"{n} = {primary[obj]}")
        elif inspect.ismodule(obj):
            continue
        elif callable(obj):
            out.extend(function_stub(n, n, obj))
        else:
            out.append(f"{n}: {type(obj).__name__ if type(obj).__module__ == 'builtins' else 'Any'}")
    return "\n".join(out) + "\n"


def main():
    stale = []
    for modname, path in STUBS.items():
        text = generate(modname)
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        if "--check" in sys.argv:
            if current != text:
                stale.append(path)
            continue
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {path} ({text.count(chr(10))} lines)")
    if stale:
        print(f"out of date: {', '.join(stale)}: run python tools/make_stubs.py", file=sys.stderr)
        return 1
    open(os.path.join(ROOT, "dynet", "py.typed"), "w").close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
