"""dy.save / dy.load: objects (Parameters, LookupParameters, collections, builders) saved with
the parameters in basename.data and how to rebuild them in basename.meta.

dy.save(basename, objects) writes basename.data (the entries) and basename.meta: per object one
pickled tuple ("Parameters", name), ("LookupParameters", name) or (class, spec, collection name) as
DyNet does. Loading never unpickles: the .meta records are read by a small interpreter of the pickle
opcodes that builds only plain data (tuples, lists, dicts, strings, numbers) and looks classes up in
modules that are already imported; it never imports a module or calls anything.
"""
import io as _pyio
import os
import pickle

from dynet.core.params import Parameters, LookupParameters
from dynet.core import collection as _collection     # (it imports dynet.io: use it at call time)
from dynet.io import textformat
from dynet.io.textformat import (ModelFileError, atomic_write, collection_entries,
                                 shorten, read_all, add_loaded, load_param, load_lookup_param,
                                 populate_collection)
from dynet.io.meta import MetaPickler, read_meta_record, END


# ---- DyNet 2.0's Model.from_file / Model.load ----------------------------------------------

def model_from_file(fname):
    """Model.from_file: a new collection holding every entry of the file, with the file's names."""
    entries = read_all(fname)
    pc = _collection.ParameterCollection()
    for hdr, values, grads in entries:
        add_loaded(pc, hdr, values, grads, hdr.name)
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
    save_objects(base + ".data", base + ".meta", objects)


def save_objects(datafile, metafile, objects):
    objects = list(objects)
    records, writers = [], []
    for obj in objects:
        if isinstance(obj, Parameters):
            records.append(("Parameters", obj.name()))
            writers.append([(obj, "")])
        elif isinstance(obj, LookupParameters):
            records.append(("LookupParameters", obj.name()))
            writers.append([(obj, "")])
        elif isinstance(obj, _collection.ParameterCollection):
            records.append(("ParameterCollection", obj.name()))
            writers.append(collection_entries(obj, ""))
        elif hasattr(obj, "param_collection") and hasattr(obj, "spec"):
            pc = obj.param_collection()
            if not isinstance(pc, _collection.ParameterCollection):
                raise TypeError(f"save: {type(obj).__name__}.param_collection() returned "
                                f"{type(pc).__name__}, not a ParameterCollection")
            if not hasattr(type(obj), "from_spec"):
                raise TypeError(f"save: {type(obj).__name__} has no from_spec(spec, model), so it "
                                f"could not be loaded")
            records.append((type(obj), obj.spec, pc.name()))
            writers.append(collection_entries(pc, ""))
        else:
            raise TypeError(f"save: cannot save an object of type {type(obj).__name__}: expected "
                            f"Parameters, LookupParameters, a ParameterCollection or an object with "
                            f"param_collection(), spec and from_spec(spec, model)")

    def write_meta(f):
        pickler = MetaPickler(f, protocol=2)
        for obj, rec in zip(objects, records):
            try:
                pickler.dump(rec)
            except (pickle.PicklingError, TypeError, AttributeError) as e:
                raise TypeError(f"save: cannot save the {type(obj).__name__}: its spec "
                                f"{shorten(repr(rec[1]), 80)} cannot be written ({e})") from None
            pickler.clear_memo()

    def write_data(f):
        for entries in writers:
            for p, key in entries:
                textformat.write_entry(f, p, key)   # (looked up at call time: tests patch it)
    # the meta is pickled into memory first: an unpicklable spec fails before any file changes
    buf = _pyio.BytesIO()
    write_meta(buf)
    atomic_write(datafile, write_data)
    atomic_write(metafile, lambda f: f.write(buf.getvalue()))


def load(basename, params):
    """dy.load: the saved objects, rebuilt in the collection `params`, in their saved order."""
    return list(load_generator(basename, params))


def load_generator(basename, params):
    """dy.load_generator: like load, one object at a time."""
    base = os.fspath(basename)
    if not isinstance(params, _collection.ParameterCollection):
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
        rec = read_meta_record(fh, metafile, index)
        if rec is END:
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
                                 f"({shorten(repr(spec), 60)}) failed: {type(e).__name__}: {e}") from e
        populate_collection(obj.param_collection(), datafile, name)
        return obj
    raise ModelFileError(metafile, None, None, f"object {index}: not a record dy.save writes "
                         f"({shorten(repr(rec), 60)})")


def _load_subcollection(pc, datafile, key):
    entries = read_all(datafile, key)
    if not entries:
        raise ModelFileError(datafile, None, key, f"no parameters under the key {key!r} in the file")
    leaf = key.rstrip("/").rsplit("/", 1)[-1]
    try:
        sub = pc.add_subcollection(leaf) if leaf else pc.add_subcollection()
    except ValueError:
        sub = pc.add_subcollection()
    for hdr, values, grads in entries:
        add_loaded(sub, hdr, values, grads, sub.name() + hdr.name[len(key):])
    return sub
