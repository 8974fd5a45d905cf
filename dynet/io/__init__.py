"""Saving and loading models, file-compatible with DyNet 2.1/2.2.

    textformat   DyNet's text format: writing and reading parameter entries, populate, load_param,
                 atomic writes (dy.save's .data file, Model.save / populate)
    objects      dy.save / dy.load of objects (parameters, collections, builders) and DyNet 2.0's
                 Model.load / Model.from_file
    meta         the .meta file: pickled as DyNet pickles, read back without unpickling
"""
from dynet.io.textformat import (ModelFileError, save_parameters, save_collection, populate_parameter,
                                 populate_collection, load_param, load_lookup_param,
                                 read_first_tensor)
from dynet.io.objects import save, load, load_generator, save_objects, model_load, model_from_file

__all__ = ["ModelFileError", "save", "load", "load_generator", "read_first_tensor"]
