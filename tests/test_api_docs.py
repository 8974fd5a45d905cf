"""Every public name of `dynet` documents itself: a docstring (help() shows more than a signature)
and a signature (inspect.signature works, so editors show argument names). Runs over whatever is
public at test time, so a name added later without a docstring fails here."""
import inspect
import re

import pytest

import dynet as dy


def public_names():
    return sorted(n for n in dir(dy) if not n.startswith("_") and not inspect.ismodule(getattr(dy, n)))


def submodule_names():
    """Public names of the public submodules (their __all__), as "module.name"."""
    import dynet.distributed
    return [(f"distributed.{n}", getattr(dynet.distributed, n)) for n in dynet.distributed.__all__]


def public_callables():
    """(qualified name, object): module-level callables, and the methods and properties of public
    classes (including those they inherit from the package's own base classes)."""
    out, seen = [], set()
    for n, obj in [(n, getattr(dy, n)) for n in public_names()] + submodule_names():
        if not callable(obj):
            continue
        out.append((n, obj))
        if inspect.isclass(obj) and obj not in seen:
            seen.add(obj)
            for klass in obj.__mro__:
                if not klass.__module__.startswith("dynet"):
                    continue
                for mn, mo in vars(klass).items():
                    if not mn.startswith("_") and (callable(mo) or isinstance(mo, property)):
                        out.append((f"{n}.{mn}", mo))
    return out


def documentation(obj):
    """The docstring without a signature line that Cython or CPython put first."""
    lines = (inspect.getdoc(obj) or "").strip().splitlines()
    while lines and re.match(r"^[\w.]+\(.*\)(\s*->.*)?$", lines[0].strip()):
        lines = lines[1:]
    return "\n".join(lines).strip()


def test_public_api_is_large_enough_to_mean_something():
    assert len(public_callables()) > 300


def test_every_public_callable_has_a_docstring():
    missing = sorted({name for name, obj in public_callables() if not documentation(obj)})
    assert not missing, f"{len(missing)} public names have no docstring: {', '.join(missing)}"


def test_every_public_callable_has_a_signature():
    missing = []
    for name, obj in public_callables():
        if isinstance(obj, property) or (inspect.isclass(obj) and issubclass(obj, BaseException)):
            continue
        try:
            inspect.signature(obj)
        except (ValueError, TypeError):
            missing.append(name)
    assert not missing, f"inspect.signature fails for: {', '.join(sorted(set(missing)))}"


def test_constructors_show_no_private_arguments():
    private = {n: str(inspect.signature(getattr(dy, n))) for n in public_names()
               if inspect.isclass(getattr(dy, n)) and not issubclass(getattr(dy, n), BaseException)
               and any(p.startswith("_") for p in inspect.signature(getattr(dy, n)).parameters)}
    assert not private


def test_trainer_signature_and_documented_arguments():
    sig = inspect.signature(dy.AdamTrainer)
    assert list(sig.parameters) == ["m", "alpha", "beta_1", "beta_2", "eps", "edecay", "learning_rate"]
    assert sig.parameters["beta_2"].default == 0.999
    assert "beta_1 (float)" in dy.AdamTrainer.__doc__
    assert str(inspect.signature(dy.ParameterCollection)) == "()"


@pytest.mark.parametrize("name", [n for n in public_names() if n.endswith("Trainer") and n != "Trainer"])
def test_trainer_text_signatures_match_the_constructor(name):
    # the signatures of Cython classes are written in their docstrings: calling the class with every
    # argument by keyword (the defaults, the model for m) checks that the names are the real ones
    cls = getattr(dy, name)
    sig = inspect.signature(cls)
    kwargs = {p: (dy.ParameterCollection() if p == "m" else v.default) for p, v in sig.parameters.items()}
    if "learning_rate" in kwargs and kwargs.get("e0", kwargs.get("alpha")) is not None:
        kwargs.pop("learning_rate")
    assert isinstance(cls(**kwargs), dy.Trainer)


def test_versions():
    assert dy.__version__ == "2.1"                    # the DyNet API level DyNet code checks
    assert re.fullmatch(r"\d+\.\d+\.\d+", dy.__package_version__)
