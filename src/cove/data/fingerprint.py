"""Stable hashes of functions and arguments, so a transform's output can be cached under a fingerprint.

A function is hashed by what it computes, not where it lives: its bytecode, constants, names, defaults,
the values in its closure and the globals it reads (recursively for functions it calls). Its file name
and line numbers are left out, so moving a function does not invalidate the cache, while editing its
body or changing a captured value does. Objects are otherwise hashed through ``pickle.dumps`` (only ever
dumped, never loaded). Something that cannot be hashed gets a random fingerprint: that transform is then
recomputed rather than served stale.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import secrets
import struct
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np


class UnhashableError(TypeError):
    pass


def cache_root() -> Path:
    """Where transform and loading caches live: COVE_DATASETS_CACHE, else ~/.cache/cove/datasets."""
    root = os.environ.get("COVE_DATASETS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "cove", "datasets"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


class Hasher:
    def __init__(self) -> None:
        self._h = hashlib.blake2b(digest_size=16)
        self._active: set[int] = set()  # functions being hashed, to stop on recursion

    def hexdigest(self) -> str:
        return self._h.hexdigest()

    def _tag(self, tag: str) -> None:
        self._h.update(tag.encode() + b"\0")

    def _bytes(self, data: bytes) -> None:
        self._h.update(struct.pack("<Q", len(data)))
        self._h.update(data)

    def update(self, obj: Any) -> None:
        if obj is None or isinstance(obj, (bool, int, float, complex)):
            self._tag(type(obj).__name__)
            self._bytes(repr(obj).encode())
        elif isinstance(obj, str):
            self._tag("str")
            self._bytes(obj.encode("utf-8", "surrogatepass"))
        elif isinstance(obj, (bytes, bytearray, memoryview)):
            self._tag("bytes")
            self._bytes(bytes(obj))
        elif isinstance(obj, (list, tuple)):
            self._tag(f"{type(obj).__name__}:{len(obj)}")
            for item in obj:
                self.update(item)
        elif isinstance(obj, dict):
            self._tag(f"dict:{len(obj)}")
            for key, value in obj.items():
                self.update(key)
                self.update(value)
        elif isinstance(obj, (set, frozenset)):
            self._tag(f"set:{len(obj)}")
            for digest in sorted(hash_object(item) for item in obj):
                self._bytes(digest.encode())
        elif isinstance(obj, np.ndarray):
            if obj.dtype == object:
                self.update(obj.tolist())
            else:
                self._tag(f"ndarray:{obj.dtype.str}:{obj.shape}")
                self._bytes(np.ascontiguousarray(obj).tobytes())
        elif isinstance(obj, types.CodeType):
            self._code(obj)
        elif isinstance(obj, types.FunctionType):
            self._function(obj)
        elif isinstance(obj, types.MethodType):
            self._tag("method")
            self.update(obj.__func__)
            self.update(obj.__self__)
        elif isinstance(obj, functools.partial):
            self._tag("partial")
            self.update(obj.func)
            self.update(obj.args)
            self.update(obj.keywords)
        elif isinstance(obj, types.ModuleType):
            self._tag("module")
            self._bytes(obj.__name__.encode())
        elif isinstance(obj, (types.BuiltinFunctionType, type)):
            self._tag("named")
            self._bytes(f"{getattr(obj, '__module__', '')}.{obj.__qualname__}".encode())
        elif isinstance(getattr(obj, "__cove_fingerprint__", None), str):
            # datasets hash by their fingerprint, never by their (possibly huge) contents
            self._tag("dataset")
            self._bytes(obj.__cove_fingerprint__.encode())
        else:
            self._object(obj)

    def _code(self, code: types.CodeType) -> None:
        self._tag("code")
        self._bytes(code.co_code)
        self.update(code.co_names)
        self.update(code.co_varnames)
        self.update(code.co_freevars)
        self.update(code.co_cellvars)
        self.update((code.co_argcount, code.co_kwonlyargcount, code.co_posonlyargcount))
        # the docstring is co_consts[0] on some versions: it is part of the text, so hashing it is harmless
        self.update(code.co_consts)

    def _function(self, fn: types.FunctionType) -> None:
        self._tag("function")
        if id(fn) in self._active:  # recursion (a function that calls itself through a global)
            self._bytes(fn.__qualname__.encode())
            return
        self._active.add(id(fn))
        try:
            self._code(fn.__code__)
            self.update(fn.__defaults__)
            self.update(fn.__kwdefaults__)
            cells = []
            for cell in fn.__closure__ or ():
                try:
                    cells.append(cell.cell_contents)
                except ValueError:  # an empty cell
                    cells.append(None)
            self.update(cells)
            used = {
                name: fn.__globals__[name] for name in _global_names(fn.__code__) if name in fn.__globals__
            }
            self.update(sorted(used.items(), key=lambda kv: kv[0]))
        finally:
            self._active.discard(id(fn))

    def _object(self, obj: Any) -> None:
        self._tag(f"object:{type(obj).__module__}.{type(obj).__qualname__}")
        try:
            self._bytes(pickle.dumps(obj, protocol=4))
            return
        except Exception:
            pass
        state = getattr(obj, "__dict__", None)
        if state is None:
            raise UnhashableError(f"cannot hash {type(obj).__qualname__}")
        self.update(state)


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def hash_object(obj: Any) -> str:
    hasher = Hasher()
    hasher.update(obj)
    return hasher.hexdigest()


def fingerprint(*parts: Any) -> str:
    """The fingerprint of a transform; random (never reused) when some part cannot be hashed."""
    try:
        return hash_object(parts)
    except (UnhashableError, RecursionError) as exc:
        warnings.warn(
            f"A transform argument could not be hashed ({exc}); its result will not be reused from the cache. "
            "Use functions and values that pickle, or pass new_fingerprint= yourself.",
            stacklevel=3,
        )
        return secrets.token_hex(16)


def random_fingerprint() -> str:
    return secrets.token_hex(16)
