"""The .meta file of dy.save: records pickled as DyNet pickles them, read back by a small
interpreter of the pickle opcodes that builds only plain data (tuples, lists, dicts, strings,
numbers) and looks classes and functions up by name in modules that are already imported: it never
imports a module or calls anything, so a malicious file cannot run code. (Functions: a spec may
name an activation, as the OneLayerMLP of DyNet's saving tutorial holds dy.tanh; only those of
modules outside Python's standard library are looked up, so a file cannot hand os.system or eval
to a from_spec.)
"""
import pickle
import pickletools
import sys
import types

from dynet.io.textformat import ModelFileError


# ---- the .meta records: pickled as DyNet does, read without unpickling --------------------------

# Our builder classes pickle under the names the reference DyNet module (`_dynet`) gives them, so
# its dy.load finds them; its LSTMBuilder is the vanilla LSTM, and our LSTMBuilder stands for its
# CoupledLSTMBuilder, or its VanillaLSTMBuilder under the 2.1 API level (see DESIGN.md).
_READ_NAMES = {"LSTMBuilder": "VanillaLSTMBuilder"}


def _write_name(cls):
    if cls.__name__ == "LSTMBuilder":
        from dynet.core import config
        return "VanillaLSTMBuilder" if config.api_2_1() else "CoupledLSTMBuilder"
    return cls.__name__
_OUR_MODULES = ("_dynet", "_gdynet", "dynet")


# what a record may hold: what read_meta_record reads back from a protocol-2 pickle
_PLAIN_TYPES = (type(None), bool, int, float, str, tuple, list, dict, type)


def _is_function(obj):
    """A function a record may name (pickled by reference): Python's, a builtin's, Cython's."""
    return (isinstance(obj, (types.FunctionType, types.BuiltinFunctionType))
            or type(obj).__name__ == "cython_function_or_method")


def _outside_stdlib(module):
    top = module.partition(".")[0]
    return top not in sys.stdlib_module_names and top not in sys.builtin_module_names


class MetaPickler(pickle._Pickler):
    """The standard pickler, except that classes of this package are named as DyNet names them,
    and that it refuses objects the loader would not read back (anything but plain data and
    classes, e.g. the builders in the spec of a BiRNNBuilder built from builder_layers)."""

    def reducer_override(self, obj):
        if isinstance(obj, _PLAIN_TYPES):
            return NotImplemented
        if _is_function(obj):
            module = getattr(obj, "__module__", None) or ""
            if _outside_stdlib(module):
                return NotImplemented              # (by reference: save_global)
            raise pickle.PicklingError(f"a spec may name functions of this package or of your own "
                                       f"modules, not {module}.{getattr(obj, '__qualname__', obj)}")
        raise pickle.PicklingError(f"a spec may hold only plain data (numbers, strings, tuples, "
                                   f"lists, dicts), classes and functions, not a {type(obj).__name__} "
                                   f"object")

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "") or ""
        if module == "dynet" or module.startswith("dynet."):
            # the name the reference gives it: its _dynet module holds the classes and operations
            qual = _write_name(obj) if isinstance(obj, type) else obj.__name__
            from dynet import _dynet as ours
            if isinstance(obj, type) or getattr(ours, qual, None) is obj:
                self.write(pickle.GLOBAL + b"_dynet\n" + qual.encode("utf-8") + b"\n")
                self.memoize(obj)
                return
        super().save_global(obj, name)


END = object()
_MARK = object()
_PLAIN = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_ARG_VALUE = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
              "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES",
              "SHORT_BINBYTES", "BINBYTES8"}


def _resolve_global(module, qualname, metafile, index):
    """A class or function named in a .meta file: from this package, or from a module already
    imported (functions only from modules outside the standard library)."""
    if module in _OUR_MODULES or module.startswith("dynet."):
        from dynet import _dynet as ours
        obj = getattr(ours, _READ_NAMES.get(qualname, qualname), None)
        if obj is None and module.startswith("dynet."):
            obj = _lookup(sys.modules.get(module), qualname)
    else:
        mod = sys.modules.get(module)
        if mod is None:
            raise ModelFileError(metafile, None, None, f"object {index}: {module}.{qualname} "
                                 f"is in a module that is not imported (import it before loading)")
        obj = _lookup(mod, qualname)
    if isinstance(obj, type) or (_is_function(obj) and (module in _OUR_MODULES or _outside_stdlib(module))):
        return obj
    raise ModelFileError(metafile, None, None, f"object {index}: {module}.{qualname} is not a "
                         f"class, or a function outside Python's standard library, that can be found "
                         f"(only those are looked up)")


def _lookup(mod, qualname):
    obj = mod
    for part in qualname.split("."):
        if obj is None or part.startswith("__"):
            return None
        obj = getattr(obj, part, None)
    return obj


def read_meta_record(fh, metafile, index):
    """One pickled record, interpreted as plain data; END at the end of the file."""
    pos = fh.tell()
    if fh.read(1) == b"":
        return END
    fh.seek(pos)

    def bad(problem):
        return ModelFileError(metafile, None, None, f"object {index} (byte {pos}): {problem}")
    stack, memo = [], {}
    try:
        for op, arg, at in pickletools.genops(fh):
            name = op.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                if len(stack) != 1 or stack[0] is _MARK:
                    raise bad("a malformed record")
                return stack[0]
            if name in _PLAIN:
                stack.append(_PLAIN[name])
            elif name in _ARG_VALUE:
                stack.append(arg)
            elif name in ("STRING", "BINSTRING", "SHORT_BINSTRING"):
                stack.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
            elif name == "BYTEARRAY8":
                stack.append(bytearray(arg))
            elif name == "MARK":
                stack.append(_MARK)
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                k = int(name[-1])
                _need(stack, k, bad)
                items = tuple(stack[-k:])
                del stack[-k:]
                stack.append(items)
            elif name in ("TUPLE", "LIST", "FROZENSET"):
                items = _pop_mark(stack, bad)
                stack.append(tuple(items) if name == "TUPLE" else
                             items if name == "LIST" else frozenset(items))
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name == "EMPTY_SET":
                stack.append(set())
            elif name == "DICT":
                items = _pop_mark(stack, bad)
                stack.append(_pairs(items, bad))
            elif name == "APPEND":
                _need(stack, 2, bad)
                x = stack.pop()
                _target(stack, list, bad).append(x)
            elif name == "APPENDS":
                items = _pop_mark(stack, bad)
                _target(stack, list, bad).extend(items)
            elif name == "SETITEM":
                _need(stack, 3, bad)
                v, k = stack.pop(), stack.pop()
                _target(stack, dict, bad)[_hashable(k, bad)] = v
            elif name == "SETITEMS":
                items = _pop_mark(stack, bad)
                _target(stack, dict, bad).update(_pairs(items, bad))
            elif name == "ADDITEMS":
                items = _pop_mark(stack, bad)
                _target(stack, set, bad).update(_hashable(x, bad) for x in items)
            elif name == "POP":
                _need(stack, 1, bad)
                stack.pop()
            elif name == "POP_MARK":
                _pop_mark(stack, bad)
            elif name == "DUP":
                _need(stack, 1, bad)
                stack.append(stack[-1])
            elif name == "MEMOIZE":
                _need(stack, 1, bad)
                memo[len(memo)] = stack[-1]
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                _need(stack, 1, bad)
                memo[arg] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if arg not in memo:
                    raise bad(f"refers to an unknown memo entry {arg}")
                stack.append(memo[arg])
            elif name in ("GLOBAL", "STACK_GLOBAL"):
                if name == "GLOBAL":
                    module, qual = arg.split(" ", 1)
                else:
                    _need(stack, 2, bad)
                    qual, module = stack.pop(), stack.pop()
                    if not isinstance(module, str) or not isinstance(qual, str):
                        raise bad("a malformed class reference")
                stack.append(_resolve_global(module, qual, metafile, index))
            else:
                raise bad(f"the record would run code to build an object (pickle opcode {name}); "
                          f"only plain data, classes and functions are read")
        raise bad("the record has no end (truncated)")
    except ModelFileError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeError, EOFError) as e:
        raise bad(f"not a record dy.save writes ({e})") from None


def _need(stack, k, bad):
    if len(stack) < k or any(x is _MARK for x in stack[-k:]):
        raise bad("a malformed record (stack underflow)")


def _pop_mark(stack, bad):
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1:]
            del stack[i:]
            return items
    raise bad("a malformed record (no mark)")


def _target(stack, kind, bad):
    if not stack or not isinstance(stack[-1], kind):
        raise bad(f"a malformed record (expected a {kind.__name__})")
    return stack[-1]


def _hashable(k, bad):
    try:
        hash(k)
    except TypeError:
        raise bad("a malformed record (unhashable key)") from None
    return k


def _pairs(items, bad):
    if len(items) % 2:
        raise bad("a malformed record (odd dict items)")
    return {_hashable(items[i], bad): items[i + 1] for i in range(0, len(items), 2)}
