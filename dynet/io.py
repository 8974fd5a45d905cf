"""Saving and loading models in DyNet's text format, file-compatible with DyNet 2.1/2.2.

The data file is a list of entries, each a header line and one line of values (two with gradients):

    #Parameter# /enc/W {64,100} 102401 ZERO_GRAD
    +1.23456791e-01 -4.00000000e+00 ... (64*100 values, column-major, each "%+.8e ")
    #LookupParameter# /_1 {50,1000} 1600001 FULL_GRAD
    <values>
    <gradients>

The dimension is DyNet's (a lookup table's is its embedding's dimensions followed by the number of
rows), the byte count is 16 bytes a value plus the end of line (doubled with gradients), and values are
written as DyNet writes them: times the collection's current weight-decay scale. Parameters come
first, then lookup parameters, each in creation order; a collection populates by that order (the
names only select a key's entries), a single parameter by its full name.

dy.save(basename, objects) writes basename.data (the entries) and basename.meta: per object one
pickled tuple ("Parameters", name), ("LookupParameters", name) or (class, spec, collection name) as
DyNet does. Loading never unpickles: the .meta records are read by a small interpreter of the pickle
opcodes that builds only plain data (tuples, lists, dicts, strings, numbers) and looks classes up in
modules that are already imported; it never imports a module or calls anything.

Every file is written beside its target and renamed into place, so a failed save leaves the old file
as it was. Loading reads into temporary arrays and touches the model only when everything parsed, so
a bad file (missing, truncated, wrong dimensions, unknown key, garbage) raises ModelFileError (or
FileNotFoundError) naming the file, the line and the parameter, and changes nothing.
"""
import io as _pyio
import os
import pickle
import pickletools
import re
import shutil
import sys
import tempfile

import numpy as np

from dynet.core.params import (ParameterCollection, Parameters, LookupParameters, ConstInitializer)
from dynet.kernels import textio as _tx

__all__ = ["ModelFileError", "save", "load", "load_generator", "read_first_tensor"]

_FLOAT_WIDTH = 16          # "+1.23456789e+00 "
_CHUNK = 1 << 20           # values formatted per write
_MAX_HEADER = 1 << 16      # a longer "header" line is not a header
_DIM_RE = re.compile(r"\{(\d+(?:,\d+)*)\}\Z")
_KINDS = {"#Parameter#": "Parameter", "#LookupParameter#": "LookupParameter"}


class ModelFileError(ValueError):
    """A model file that cannot be read (or a request it cannot satisfy). `filename`, `line` and
    `parameter` say where (line and parameter may be None)."""

    def __init__(self, filename, line, parameter, problem):
        self.filename, self.line, self.parameter, self.problem = filename, line, parameter, problem
        where = repr(os.fspath(filename))
        if line is not None:
            where += f", line {line}"
        if parameter is not None:
            where += f", parameter {parameter}"
        super().__init__(f"{where}: {problem}")


# ---- what a parameter looks like on disk ---------------------------------------------------------

def _dims_of(p):
    """The DyNet dimension of a parameter as written in headers."""
    shape = tuple(p.shape())
    if isinstance(p, LookupParameters):
        return shape[1:] + shape[:1]
    return shape


def _dim_text(dims):
    return "{" + ",".join(str(int(d)) for d in dims) + "}"


def _weight_decay_scale(owner):
    """The factor between stored values and the values a user sees, for collections that apply L2
    weight decay lazily as DyNet does (they expose `current_weight_decay`); 1 otherwise."""
    if owner is None:
        return 1.0
    root = getattr(owner, "_root", owner)
    s = getattr(root, "current_weight_decay", None)
    if s is None:
        return 1.0
    return float(s() if callable(s) else s)


def _check_key(key, what, collection=False):
    if not isinstance(key, str):
        raise TypeError(f"{what}: the key must be a string, got {type(key).__name__}")
    if key == "":
        return
    if collection and not key.startswith("/"):
        raise ValueError(f"{what}: a collection's key must start with '/', got {key!r}")
    if key == "/" and not collection or any(c in key for c in " #\n\r\t"):
        raise ValueError(f"{what}: a key must not contain spaces or '#' (and cannot be '/'), got {key!r}")


# ---- writing ------------------------------------------------------------------------------------

def _write_entry(f, p, key):
    owner, has_grad = p._io_state()
    kind = "#LookupParameter#" if isinstance(p, LookupParameters) else "#Parameter#"
    dims = _dims_of(p)
    values, grads = p.values, p.grads
    # DyNet writes gradients once a backward pass reached the parameter; ours is marked as soon
    # as it enters a graph, so a forward-only use would write zeros that DyNet leaves out
    has_grad = has_grad and bool(grads.any())
    size = values.shape[0] * _FLOAT_WIDTH + 1
    if has_grad:
        head = f"{kind} {key or p.name()} {_dim_text(dims)} {2 * size} FULL_GRAD\n"
    else:
        head = f"{kind} {key or p.name()} {_dim_text(dims)} {size} ZERO_GRAD\n"
    f.write(head.encode("utf-8"))
    scale = _weight_decay_scale(owner)
    _write_floats(f, values, scale)
    if has_grad:
        _write_floats(f, grads, 1.0)


def _write_floats(f, arr, scale):
    for start in range(0, arr.shape[0], _CHUNK):
        f.write(_tx.format_floats(arr[start:start + _CHUNK], scale))
    f.write(b"\n")


def _default_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(fname, write, append=False):
    """Run write(f) on a new file beside `fname`, then rename it into place (keeping the old
    contents first when appending). On any failure the old file is left as it was."""
    target = os.fspath(fname)
    folder = os.path.dirname(os.path.abspath(target))
    try:
        mode = os.stat(target).st_mode & 0o7777
        exists = True
    except FileNotFoundError:
        mode, exists = _default_mode(), False
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if append and exists:
                with open(target, "rb") as old:
                    shutil.copyfileobj(old, f, 1 << 22)
            write(f)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_parameters(fname, params, key="", append=False, what="save"):
    """Write one parameter or lookup parameter under `key` (its own name if empty)."""
    _check_key(key, what)
    _atomic_write(fname, lambda f: _write_entry(f, params, key), append)


def _collection_entries(pc, key):
    """(parameter, key) pairs of a collection: parameters first, then lookup parameters, with the
    collection's own prefix replaced by `key` when one is given (DyNet's rule)."""
    plist = list(pc.parameters_list()) + list(pc.lookup_parameters_list())
    if not key:
        return [(p, "") for p in plist]
    prefix = key if key.endswith("/") else key + "/"
    strip = len(pc.name())
    return [(p, prefix + p.name()[strip:]) for p in plist]


def save_collection(pc, fname, key="", append=False):
    """ParameterCollection.save: every parameter of the collection (and its subcollections)."""
    _check_key(key, "ParameterCollection.save", collection=True)
    entries = _collection_entries(pc, key)

    def write(f):
        for p, k in entries:
            _write_entry(f, p, k)
    _atomic_write(fname, write, append)


# ---- reading ------------------------------------------------------------------------------------

class _Header:
    __slots__ = ("kind", "name", "dims", "size", "full_grad", "line")

    def __init__(self, kind, name, dims, full_grad, line):
        self.kind, self.name, self.dims, self.full_grad, self.line = kind, name, dims, full_grad, line
        self.size = int(np.prod(dims, dtype=np.int64))


class _Reader:
    """A model file opened for reading: headers, values and skips, with errors that say where."""

    def __init__(self, fname):
        self.fname = os.fspath(fname)
        try:
            self.f = open(self.fname, "rb")
        except FileNotFoundError:
            raise FileNotFoundError(2, "no such model file", self.fname) from None
        except IsADirectoryError:
            raise ModelFileError(self.fname, None, None, "is a directory, not a model file") from None
        self.file_size = os.fstat(self.f.fileno()).st_size
        self.r = _tx.TextReader(self.f)

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def error(self, problem, line=None, param=None):
        return ModelFileError(self.fname, line, param, problem)

    def next_header(self):
        """The next entry's header, or None at the end of the file (blank lines are skipped)."""
        while True:
            got = self.r.read_line(_MAX_HEADER)
            if got is None:
                return None
            raw, terminated = got
            line = self.r.line + (0 if terminated else 1)
            if not terminated and len(raw) >= _MAX_HEADER:
                raise self.error("not a parameter header (a line of over 64 KB: binary data?)", line)
            if raw.strip() == b"":
                continue
            return self._parse_header(raw, line, terminated)

    def _parse_header(self, raw, line, terminated):
        try:
            text = raw.decode("utf-8")         # names may be any text, but not binary data
        except UnicodeDecodeError:
            raise self.error("not a parameter header (binary data)", line) from None
        if not text.replace("\t", " ").replace("\r", " ").isprintable():
            raise self.error("not a parameter header (binary data)", line)
        parts = text.split()
        if not parts or parts[0] not in _KINDS:
            raise self.error(f"expected a '#Parameter#' or '#LookupParameter#' header, found "
                             f"{_shorten(text)!r}", line)
        if len(parts) < 4 or len(parts) > 5:
            raise self.error(f"a header needs a kind, a name, a dimension, a byte count and "
                             f"ZERO_GRAD/FULL_GRAD, found {_shorten(text)!r}", line)
        kind, name, dimtext, count = parts[:4]
        m = _DIM_RE.match(dimtext)
        if not m:
            raise self.error(f"bad dimension {_shorten(dimtext)!r} (expected e.g. {{64,100}})", line, name)
        dims = tuple(int(x) for x in m.group(1).split(","))
        if len(dims) > 7 or min(dims) < 1:
            raise self.error(f"bad dimension {dimtext} (1 to 7 positive sizes)", line, name)
        if kind == "#LookupParameter#" and len(dims) < 2:
            raise self.error(f"a lookup parameter's dimension needs at least two sizes, got {dimtext}",
                             line, name)
        if not count.isdigit():
            raise self.error(f"bad byte count {_shorten(count)!r}", line, name)
        full = False
        if len(parts) == 5:
            if parts[4] not in ("ZERO_GRAD", "FULL_GRAD"):
                raise self.error(f"expected ZERO_GRAD or FULL_GRAD, found {_shorten(parts[4])!r}",
                                 line, name)
            full = parts[4] == "FULL_GRAD"
        if not terminated:
            raise self.error("the file ends after this header (truncated)", line, name)
        hdr = _Header(_KINDS[kind], name, dims, full, line)
        # every value takes at least two bytes ("0 "): a header that promises more is corrupt or
        # truncated, and must not make us allocate its size
        if hdr.size * 2 * (2 if full else 1) > self.file_size:
            raise self.error(f"the header promises {hdr.size} values ({dimtext}) but the file has "
                             f"only {self.file_size} bytes (truncated?)", line, name)
        return hdr

    def read_values(self, hdr, what="values"):
        """The next line's values for this entry, as a new float32 array."""
        out = np.empty(hdr.size, dtype=np.float32)
        self.read_into(out, hdr, what)
        return out

    def read_into(self, out, hdr, what="values"):
        line = self.r.line + 1
        count, status = self.r.read_floats(out, 0, hdr.size)
        if status == _tx.OK and count == hdr.size:
            return out
        if status == _tx.BAD_TOKEN:
            tok = self.r.bad_token.decode("latin-1")
            raise self.error(f"{what}: number {count + 1} of {hdr.size}, {_shorten(tok)!r}, is not a "
                             f"number", line, hdr.name)
        if status == _tx.TOO_MANY:
            raise self.error(f"{what}: more than the {hdr.size} numbers of {_dim_text(hdr.dims)}",
                             line, hdr.name)
        if status == _tx.NO_EOL:
            if count == 0 and self.r.at_eof():
                raise self.error(f"the file ends where the {what} of {hdr.name} should be (truncated)",
                                 line, hdr.name)
            raise self.error(f"{what}: the file ends inside this line (truncated) after {count} of "
                             f"{hdr.size} numbers", line, hdr.name)
        raise self.error(f"{what}: {count} numbers where {_dim_text(hdr.dims)} needs {hdr.size}",
                         line, hdr.name)

    def read_entry(self, hdr):
        """(values, grads or None) of the entry whose header was just read."""
        values = self.read_values(hdr)
        grads = self.read_values(hdr, "gradients") if hdr.full_grad else None
        return values, grads

    def skip_entry(self, hdr):
        for what in (("values", "gradients") if hdr.full_grad else ("values",)):
            line = self.r.line + 1
            if not self.r.skip_line():
                raise self.error(f"the file ends inside the {what} of {hdr.name} (truncated)",
                                 line, hdr.name)

    def headers(self):
        """Iterate over the entries; the caller reads or skips each one's values."""
        while True:
            hdr = self.next_header()
            if hdr is None:
                return
            yield hdr


def _shorten(s, n=40):
    return s if len(s) <= n else s[:n] + "..."


def _check_dims(reader, hdr, p):
    want = _dims_of(p)
    if hdr.dims != want:
        raise reader.error(f"the file's {hdr.kind} has dimension {_dim_text(hdr.dims)} but the "
                           f"{_kind_word(p)} {p.name()} to populate has {_dim_text(want)}",
                           hdr.line, hdr.name)


def _kind_word(p):
    return "lookup parameter" if isinstance(p, LookupParameters) else "parameter"


def _kind_of(p):
    return "LookupParameter" if isinstance(p, LookupParameters) else "Parameter"


def _commit(p, values, grads):
    """Write parsed values (stored divided by the weight-decay scale, the inverse of saving) and
    gradients into a parameter; nothing can fail any more at this point."""
    owner, _ = p._io_state()
    scale = _weight_decay_scale(owner)
    if scale != 1.0:
        values = values / np.float32(scale)
    p._io_assign(values, grads)


def populate_parameter(p, fname, key=""):
    """Parameters.populate / LookupParameters.populate: the entry named `key` (default: the
    parameter's own name) of the parameter's kind."""
    if not isinstance(key, str):
        raise TypeError(f"populate: the key must be a string, got {type(key).__name__}")
    key = key or p.name()
    kind = _kind_of(p)
    with _Reader(fname) as rd:
        for hdr in rd.headers():
            if hdr.kind == kind and hdr.name == key:
                _check_dims(rd, hdr, p)
                values, grads = rd.read_entry(hdr)
                _commit(p, values, grads)
                return
            rd.skip_entry(hdr)
    raise ModelFileError(fname, None, key, f"no #{kind}# named {key!r} in the file")


def populate_collection(pc, fname, key=""):
    """ParameterCollection.populate: the file's entries (those under `key` if one is given) fill
    the collection's parameters, then its lookup parameters, in order (DyNet's rule)."""
    if not isinstance(key, str):
        raise TypeError(f"populate: the key must be a string, got {type(key).__name__}")
    targets = {"Parameter": list(pc.parameters_list()),
               "LookupParameter": list(pc.lookup_parameters_list())}
    prefix = key if not key or key.endswith("/") else key + "/"
    used = {"Parameter": 0, "LookupParameter": 0}
    pending = []
    with _Reader(fname) as rd:
        for hdr in rd.headers():
            if prefix and not hdr.name.startswith(prefix):
                rd.skip_entry(hdr)
                continue
            i = used[hdr.kind]
            if i >= len(targets[hdr.kind]):
                raise rd.error(f"the file has more {hdr.kind.lower()}s than the collection "
                               f"{pc.name()} ({len(targets[hdr.kind])})", hdr.line, hdr.name)
            p = targets[hdr.kind][i]
            used[hdr.kind] = i + 1
            _check_dims(rd, hdr, p)
            pending.append((p,) + rd.read_entry(hdr))
    if used["Parameter"] == 0 and used["LookupParameter"] == 0 and prefix and \
            (targets["Parameter"] or targets["LookupParameter"]):
        raise ModelFileError(fname, None, None, f"no parameters under the key {prefix!r} in the file")
    if used["Parameter"] != len(targets["Parameter"]) or \
            used["LookupParameter"] != len(targets["LookupParameter"]):
        raise ModelFileError(
            fname, None, None,
            f"the file has {used['Parameter']} parameters and {used['LookupParameter']} lookup "
            f"parameters{' under ' + repr(prefix) if prefix else ''}, the collection {pc.name()} has "
            f"{len(targets['Parameter'])} and {len(targets['LookupParameter'])}")
    for p, values, grads in pending:
        _commit(p, values, grads)


def _find_entry(fname, kind, key):
    """(header, values, grads) of the entry of this kind named key."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"load_param: needs the full name of a parameter as its key, got {key!r}")
    with _Reader(fname) as rd:
        for hdr in rd.headers():
            if hdr.kind == kind and hdr.name == key:
                return (hdr,) + rd.read_entry(hdr)
            rd.skip_entry(hdr)
    raise ModelFileError(fname, None, key, f"no #{kind}# named {key!r} in the file")


def _add_loaded(pc, hdr, values, grads, name):
    """A new parameter in `pc` holding an entry's contents, named as in the file (DyNet's way)."""
    if hdr.kind == "Parameter":
        p = pc.add_parameters(hdr.dims, init=ConstInitializer(0))
    else:
        p = pc.add_lookup_parameters(hdr.dims[-1:] + hdr.dims[:-1], init=ConstInitializer(0))
    _commit(p, values, grads)
    p._io_rename(name)
    return p


def load_param(pc, fname, key):
    """ParameterCollection.load_param: a new Parameters from the entry named `key`."""
    hdr, values, grads = _find_entry(fname, "Parameter", key)
    return _add_loaded(pc, hdr, values, grads, key)


def load_lookup_param(pc, fname, key):
    """ParameterCollection.load_lookup_param: a new LookupParameters from the entry named `key`."""
    hdr, values, grads = _find_entry(fname, "LookupParameter", key)
    return _add_loaded(pc, hdr, values, grads, key)


def _read_all(fname, prefix=""):
    """Every entry (under prefix), parsed: a list of (header, values, grads)."""
    out = []
    with _Reader(fname) as rd:
        for hdr in rd.headers():
            if prefix and not hdr.name.startswith(prefix):
                rd.skip_entry(hdr)
                continue
            out.append((hdr,) + rd.read_entry(hdr))
    return out


def read_first_tensor(fname, shape, is_lookup=False):
    """FromFileInitializer: values for an array of numpy shape `shape` from either the first entry
    of a DyNet model file or, as DyNet's ParameterInitFromFile reads, a plain file of numbers
    separated by white space (in DyNet's column-major order; for a lookup table, row after row)."""
    shape = tuple(int(s) for s in shape)
    size = int(np.prod(shape, dtype=np.int64))
    dyshape = shape[1:] + shape[:1] if is_lookup else shape
    with _Reader(fname) as rd:
        got = rd.r.read_line(_MAX_HEADER)
        first = got[0].lstrip() if got else b""
        if first.startswith(b"#"):
            rd.close()
            with _Reader(fname) as rd2:
                hdr = rd2.next_header()
                if hdr.dims != dyshape:
                    raise rd2.error(f"FromFileInitializer: the file's first entry has dimension "
                                    f"{_dim_text(hdr.dims)}, the parameter {_dim_text(dyshape)}",
                                    hdr.line, hdr.name)
                flat = rd2.read_values(hdr)
        else:
            flat = _read_plain(fname, size)
    if is_lookup:
        return np.moveaxis(flat.reshape(dyshape, order="F"), -1, 0)
    return flat.reshape(shape, order="F")


def _read_plain(fname, size):
    out = np.empty(size, dtype=np.float32)
    n = 0
    with _Reader(fname) as rd:
        while True:
            line = rd.r.line + 1
            count, status = rd.r.read_floats(out, n, size - n)
            n += count
            if status == _tx.BAD_TOKEN:
                raise rd.error(f"FromFileInitializer: {rd.r.bad_token.decode('latin-1')!r} is not a "
                               f"number", line)
            if status == _tx.TOO_MANY:
                raise rd.error(f"FromFileInitializer: more than the {size} numbers the parameter "
                               f"needs", line)
            if status == _tx.NO_EOL or rd.r.at_eof():
                break
    if n != size:
        raise ModelFileError(fname, None, None, f"FromFileInitializer: {n} numbers where the "
                             f"parameter needs {size}")
    return out


# ---- the 2.0 API: Model.save(fname, components) / load / from_file -----------------------------

def model_from_file(fname):
    """Model.from_file: a new collection holding every entry of the file, with the file's names."""
    entries = _read_all(fname)
    pc = ParameterCollection()
    for hdr, values, grads in entries:
        _add_loaded(pc, hdr, values, grads, hdr.name)
    return pc


def model_load(pc, fname):
    """Model.load: with a component list saved beside the file (Model.save(fname, components)),
    add those components to the collection and return them; else populate the whole collection
    and return its parameters and lookup parameters."""
    meta = os.fspath(fname) + ".meta"
    if os.path.exists(meta):
        return list(_load_objects(fname, meta, pc))
    populate_collection(pc, fname)
    return list(pc.parameters_list()) + list(pc.lookup_parameters_list())


# ---- dy.save / dy.load --------------------------------------------------------------------------

def save(basename, objects):
    """dy.save: basename.data holds the objects' parameters, basename.meta how to rebuild them."""
    base = os.fspath(basename)
    _save_objects(base + ".data", base + ".meta", objects)


def _save_objects(datafile, metafile, objects):
    objects = list(objects)
    records, writers = [], []
    for obj in objects:
        if isinstance(obj, Parameters):
            records.append(("Parameters", obj.name()))
            writers.append([(obj, "")])
        elif isinstance(obj, LookupParameters):
            records.append(("LookupParameters", obj.name()))
            writers.append([(obj, "")])
        elif isinstance(obj, ParameterCollection):
            records.append(("ParameterCollection", obj.name()))
            writers.append(_collection_entries(obj, ""))
        elif hasattr(obj, "param_collection") and hasattr(obj, "spec"):
            pc = obj.param_collection()
            if not isinstance(pc, ParameterCollection):
                raise TypeError(f"save: {type(obj).__name__}.param_collection() returned "
                                f"{type(pc).__name__}, not a ParameterCollection")
            if not hasattr(type(obj), "from_spec"):
                raise TypeError(f"save: {type(obj).__name__} has no from_spec(spec, model), so it "
                                f"could not be loaded")
            records.append((type(obj), obj.spec, pc.name()))
            writers.append(_collection_entries(pc, ""))
        else:
            raise TypeError(f"save: cannot save an object of type {type(obj).__name__}: expected "
                            f"Parameters, LookupParameters, a ParameterCollection or an object with "
                            f"param_collection(), spec and from_spec(spec, model)")

    def write_meta(f):
        pickler = _MetaPickler(f, protocol=2)
        for obj, rec in zip(objects, records):
            try:
                pickler.dump(rec)
            except (pickle.PicklingError, TypeError, AttributeError) as e:
                raise TypeError(f"save: cannot save the {type(obj).__name__}: its spec "
                                f"{_shorten(repr(rec[1]), 80)} cannot be written ({e})") from None
            pickler.clear_memo()

    def write_data(f):
        for entries in writers:
            for p, key in entries:
                _write_entry(f, p, key)
    # the meta is pickled into memory first: an unpicklable spec fails before any file changes
    buf = _pyio.BytesIO()
    write_meta(buf)
    _atomic_write(datafile, write_data)
    _atomic_write(metafile, lambda f: f.write(buf.getvalue()))


def load(basename, params):
    """dy.load: the saved objects, rebuilt in the collection `params`, in their saved order."""
    return list(load_generator(basename, params))


def load_generator(basename, params):
    """dy.load_generator: like load, one object at a time."""
    base = os.fspath(basename)
    if not isinstance(params, ParameterCollection):
        raise TypeError(f"load: the second argument must be a ParameterCollection, got "
                        f"{type(params).__name__}")
    for f in (base + ".meta", base + ".data"):
        if not os.path.exists(f):
            raise FileNotFoundError(2, "no such model file", f)
    return _load_objects(base + ".data", base + ".meta", params)


def _load_objects(datafile, metafile, pc):
    with open(metafile, "rb") as f:
        # in memory: a corrupt length in a record must not make a file read allocate that much
        fh = _pyio.BytesIO(f.read())
    index = 0
    while True:
        rec = _read_meta_record(fh, metafile, index)
        if rec is _END:
            return
        yield _load_one(datafile, metafile, index, rec, pc)
        index += 1


def _load_one(datafile, metafile, index, rec, pc):
    if isinstance(rec, tuple) and len(rec) == 2 and rec[0] in ("Parameters", "LookupParameters") \
            and isinstance(rec[1], str):
        if rec[0] == "Parameters":
            return load_param(pc, datafile, rec[1])
        return load_lookup_param(pc, datafile, rec[1])
    if isinstance(rec, tuple) and len(rec) == 2 and rec[0] == "ParameterCollection" \
            and isinstance(rec[1], str):
        return _load_subcollection(pc, datafile, rec[1])
    if isinstance(rec, tuple) and len(rec) == 3 and isinstance(rec[0], type) and isinstance(rec[2], str):
        cls, spec, name = rec
        if not callable(getattr(cls, "from_spec", None)):
            raise ModelFileError(metafile, None, name, f"object {index}: class {cls.__qualname__} "
                                 f"has no from_spec(spec, model)")
        try:
            obj = cls.from_spec(spec, pc)
        except Exception as e:      # a spec from a damaged file, most likely: say where it came from
            raise ModelFileError(metafile, None, name, f"object {index}: {cls.__qualname__}.from_spec"
                                 f"({_shorten(repr(spec), 60)}) failed: {type(e).__name__}: {e}") from e
        populate_collection(obj.param_collection(), datafile, name)
        return obj
    raise ModelFileError(metafile, None, None, f"object {index}: not a record dy.save writes "
                         f"({_shorten(repr(rec), 60)})")


def _load_subcollection(pc, datafile, key):
    entries = _read_all(datafile, key)
    if not entries:
        raise ModelFileError(datafile, None, key, f"no parameters under the key {key!r} in the file")
    leaf = key.rstrip("/").rsplit("/", 1)[-1]
    try:
        sub = pc.add_subcollection(leaf) if leaf else pc.add_subcollection()
    except ValueError:
        sub = pc.add_subcollection()
    for hdr, values, grads in entries:
        _add_loaded(sub, hdr, values, grads, sub.name() + hdr.name[len(key):])
    return sub


# ---- the .meta records: pickled as DyNet does, read without unpickling --------------------------

# Our builder classes pickle under the names the reference DyNet module (`_dynet`) gives them, so
# its dy.load finds them; its LSTMBuilder is the vanilla LSTM and our LSTMBuilder its
# CoupledLSTMBuilder (see DESIGN.md).
_WRITE_NAMES = {"LSTMBuilder": "CoupledLSTMBuilder"}
_READ_NAMES = {"LSTMBuilder": "VanillaLSTMBuilder", "CoupledLSTMBuilder": "LSTMBuilder"}
_OUR_MODULES = ("_dynet", "_gdynet", "dynet")


# what a record may hold: what _read_meta_record reads back from a protocol-2 pickle
_PLAIN_TYPES = (type(None), bool, int, float, str, tuple, list, dict, type)


class _MetaPickler(pickle._Pickler):
    """The standard pickler, except that classes of this package are named as DyNet names them,
    and that it refuses objects the loader would not read back (anything but plain data and
    classes, e.g. the builders in the spec of a BiRNNBuilder built from builder_layers)."""

    def reducer_override(self, obj):
        if isinstance(obj, _PLAIN_TYPES):
            return NotImplemented
        raise pickle.PicklingError(f"a spec may hold only plain data (numbers, strings, tuples, "
                                   f"lists, dicts) and classes, not a {type(obj).__name__} object")

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "") or ""
        if isinstance(obj, type) and (module == "dynet" or module.startswith("dynet.")):
            qual = _WRITE_NAMES.get(obj.__name__, obj.__name__)
            self.write(pickle.GLOBAL + b"_dynet\n" + qual.encode("utf-8") + b"\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


_END = object()
_MARK = object()
_PLAIN = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_ARG_VALUE = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
              "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES",
              "SHORT_BINBYTES", "BINBYTES8"}


def _resolve_class(module, qualname, metafile, index):
    """A class named in a .meta file: from this package, or from a module already imported."""
    if module in _OUR_MODULES or module.startswith("dynet."):
        from dynet import _dynet as ours
        obj = getattr(ours, _READ_NAMES.get(qualname, qualname), None)
        if obj is None and module.startswith("dynet."):
            obj = _lookup(sys.modules.get(module), qualname)
    else:
        mod = sys.modules.get(module)
        if mod is None:
            raise ModelFileError(metafile, None, None, f"object {index}: class {module}.{qualname} "
                                 f"is in a module that is not imported (import it before loading)")
        obj = _lookup(mod, qualname)
    if not isinstance(obj, type):
        raise ModelFileError(metafile, None, None, f"object {index}: {module}.{qualname} is not a "
                             f"class that can be found (only classes are looked up)")
    return obj


def _lookup(mod, qualname):
    obj = mod
    for part in qualname.split("."):
        if obj is None or part.startswith("__"):
            return None
        obj = getattr(obj, part, None)
    return obj


def _read_meta_record(fh, metafile, index):
    """One pickled record, interpreted as plain data; _END at the end of the file."""
    pos = fh.tell()
    if fh.read(1) == b"":
        return _END
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
                stack.append(_resolve_class(module, qual, metafile, index))
            else:
                raise bad(f"the record would run code to build an object (pickle opcode {name}); "
                          f"only plain data and classes are read")
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
