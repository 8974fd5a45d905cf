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

Every file is written beside its target and renamed into place, so a failed save leaves the old file
as it was. The temporary file is named after the target and the writing process
(`.NAME.PID.XXXXXXXX.tmp`); a save first removes such files left by saves of the same target that
were killed (their process is gone), so killed saves do not pile up. Loading reads into temporary
arrays and touches the model only when everything parsed, so
a bad file (missing, truncated, wrong dimensions, unknown key, garbage) raises ModelFileError (or
FileNotFoundError) naming the file, the line and the parameter, and changes nothing.
"""
import os
import re
import shutil
import time

import numpy as np

from dynet.core.initializers import ConstInitializer
from dynet.core.params import LookupParameters
from dynet.kernels import textio as _tx

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
    weight decay lazily as DyNet does; 1 for a parameter without a collection."""
    if owner is None:
        return 1.0
    return float(owner.weight_decay_state().scale)


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

def write_entry(f, p, key):
    owner, has_grad = p.collection(), p.has_gradient()
    kind = "#LookupParameter#" if isinstance(p, LookupParameters) else "#Parameter#"
    dims = _dims_of(p)
    values, grads = p.host_values(), p.host_grads()
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


def atomic_write(fname, write, append=False):
    """Run write(f) on a new file beside `fname`, then rename it into place (keeping the old
    contents first when appending). On any failure the old file is left as it was."""
    target = os.fspath(fname)
    folder = os.path.dirname(os.path.abspath(target))
    try:
        mode = os.stat(target).st_mode & 0o7777
        exists = True
    except FileNotFoundError:
        mode, exists = _default_mode(), False
    remove_stale_temporaries(target)
    fd, tmp = _new_temporary(folder, os.path.basename(target))
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


# A temporary file of a save that was killed is removed by the next save of the same file once it
# is stale: its process is gone (or, for a name without a process id, as older versions wrote them,
# or a process id since reused, it has not been written to for a while: a live save writes all the
# time).
_LEGACY_STALE_S = 60
_STALE_S = 3600


def _new_temporary(folder, base):
    """(fd, path) of a new empty file `.BASE.PID.XXXXXXXX.tmp` in `folder`."""
    while True:
        path = os.path.join(folder, f".{base}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path
        except FileExistsError:
            continue


def _process_gone(pid):
    if pid == os.getpid():
        return False                 # ours: a save of another thread may be writing it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


def remove_stale_temporaries(target):
    """Remove the temporary files that killed saves of `target` left beside it."""
    folder = os.path.dirname(os.path.abspath(target))
    prefix, now = "." + os.path.basename(target) + ".", time.time()
    ours = re.compile(re.escape(prefix) + r"(\d+)\.[0-9a-f]{8}\.tmp\Z")
    legacy = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}\.tmp\Z")   # tempfile.mkstemp's names
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        try:
            age = now - os.stat(path).st_mtime
        except OSError:
            continue
        m = ours.match(name)
        if m:
            stale = _process_gone(int(m.group(1))) or age > _STALE_S
        else:
            stale = legacy.match(name) is not None and age > _LEGACY_STALE_S
        if stale:
            try:
                os.unlink(path)
            except OSError:
                pass


def save_parameters(fname, params, key="", append=False, what="save"):
    """Write one parameter or lookup parameter under `key` (its own name if empty)."""
    _check_key(key, what)
    atomic_write(fname, lambda f: write_entry(f, params, key), append)


def collection_entries(pc, key):
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
    entries = collection_entries(pc, key)

    def write(f):
        for p, k in entries:
            write_entry(f, p, k)
    atomic_write(fname, write, append)


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
                             f"{shorten(text)!r}", line)
        if len(parts) < 4 or len(parts) > 5:
            raise self.error(f"a header needs a kind, a name, a dimension, a byte count and "
                             f"ZERO_GRAD/FULL_GRAD, found {shorten(text)!r}", line)
        kind, name, dimtext, count = parts[:4]
        m = _DIM_RE.match(dimtext)
        if not m:
            raise self.error(f"bad dimension {shorten(dimtext)!r} (expected e.g. {{64,100}})", line, name)
        dims = tuple(int(x) for x in m.group(1).split(","))
        if len(dims) > 7:                 # (a size may be 0: DyNet saves empty parameters)
            raise self.error(f"bad dimension {dimtext} (1 to 7 sizes)", line, name)
        if kind == "#LookupParameter#" and len(dims) < 2:
            raise self.error(f"a lookup parameter's dimension needs at least two sizes, got {dimtext}",
                             line, name)
        if not count.isdigit():
            raise self.error(f"bad byte count {shorten(count)!r}", line, name)
        full = False
        if len(parts) == 5:
            if parts[4] not in ("ZERO_GRAD", "FULL_GRAD"):
                raise self.error(f"expected ZERO_GRAD or FULL_GRAD, found {shorten(parts[4])!r}",
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
            raise self.error(f"{what}: number {count + 1} of {hdr.size}, {shorten(tok)!r}, is not a "
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


def shorten(s, n=40):
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
    scale = _weight_decay_scale(p.collection())
    if scale != 1.0:
        values = values / np.float32(scale)
    p.load_state(values, grads)


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


# The two LSTMs that DyNet calls LSTMBuilder (2.0: the peephole LSTM; 2.1: the vanilla one) keep
# their parameters in subcollections named after them; a file of the other one gets a hint.
_LSTM_LAYOUTS = {
    "vanilla-lstm-builder": "a VanillaLSTMBuilder (DyNet 2.1's LSTMBuilder): build dy.VanillaLSTMBuilder, "
                            "or choose the 2.1 API level (dynet_config.set(api='2.1'), --dynet-api 2.1)",
    "lstm-builder": "a CoupledLSTMBuilder (DyNet 2.0's LSTMBuilder, with peepholes): build "
                    "dy.CoupledLSTMBuilder, or keep the 2.0 API level (the default)",
}


def _lstm_layouts(names):
    found = set()
    for name in names:
        for part in name.split("/")[:-1]:
            base = re.sub(r"_\d+$", "", part)
            if base in _LSTM_LAYOUTS:
                found.add(base)
    return found


def _lstm_hint(pc, fname):
    """'' or a sentence saying which builder the file's LSTM parameters belong to, where they are
    the other LSTM than the collection's."""
    try:
        with _Reader(fname) as rd:
            in_file = set()
            for hdr in rd.headers():
                in_file |= _lstm_layouts([hdr.name])
                rd.skip_entry(hdr)
    except ModelFileError:
        return ""
    in_model = _lstm_layouts(p.name() for p in pc.parameters_list())
    if not (in_model - in_file):
        return ""
    return "".join(f"; the file holds {_LSTM_LAYOUTS[k]}" for k in sorted(in_file - in_model))


def populate_collection(pc, fname, key=""):
    """ParameterCollection.populate: the file's entries (those under `key` if one is given) fill
    the collection's parameters, then its lookup parameters, in order (DyNet's rule)."""
    try:
        _populate_collection(pc, fname, key)
    except ModelFileError as e:
        hint = _lstm_hint(pc, fname)
        if not hint:
            raise
        raise ModelFileError(e.filename, e.line, e.parameter, e.problem + hint) from None


def _populate_collection(pc, fname, key):
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


def add_loaded(pc, hdr, values, grads, name):
    """A new parameter in `pc` holding an entry's contents, named as in the file (DyNet's way)."""
    if hdr.kind == "Parameter":
        p = pc.add_parameters(hdr.dims, init=ConstInitializer(0))
    else:
        p = pc.add_lookup_parameters(hdr.dims[-1:] + hdr.dims[:-1], init=ConstInitializer(0))
    _commit(p, values, grads)
    p.set_name(name)
    return p


def load_param(pc, fname, key):
    """ParameterCollection.load_param: a new Parameters from the entry named `key`."""
    hdr, values, grads = _find_entry(fname, "Parameter", key)
    return add_loaded(pc, hdr, values, grads, key)


def load_lookup_param(pc, fname, key):
    """ParameterCollection.load_lookup_param: a new LookupParameters from the entry named `key`."""
    hdr, values, grads = _find_entry(fname, "LookupParameter", key)
    return add_loaded(pc, hdr, values, grads, key)


def read_all(fname, prefix=""):
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
