"""Outputs that exist complete or not at all: a killed ``xsl-prep`` / ``xsl-eval`` never leaves a
file under its final name that a later run (or a recipe's ``[ -f ... ] ||`` stage check) would
take for finished.

Everything is written under a hidden temporary name in the *same directory* as the final path
(so the rename never crosses a file system) and moved into place with :func:`os.replace`, which
POSIX makes atomic. An exception inside the context removes the temporaries and leaves any
earlier version of the output untouched; a SIGKILL leaves at most a ``.tmp-*`` file or directory
beside it, which no reader looks for. (No fsync: this guards against killed processes, not
against power loss.)

* :func:`atomic_write`: one file, opened like :func:`open`.
* :func:`atomic_paths`: temporary paths for writers that want a path (``torch.save``,
  ``np.save``, sentencepiece, fairseq's indexed-dataset builder); replaced in the order given,
  so the file readers check for (an ``.idx`` beside its ``.bin``, ``spm.model``) comes last.
* :func:`atomic_directory`: a directory of outputs staged in a hidden sibling and renamed into
  place in one step. Into an existing directory the staged files are moved one by one in the
  order they were written, so the last file a command writes (its metadata) appears last.
"""
import contextlib
import os
import shutil
import uuid
from typing import Iterator, List, Tuple


def _temporary_name(path: str) -> str:
    """A hidden name beside ``path`` that keeps ``path``'s file name at the end, so writers that
    add or check an extension (``np.save``, ``.bin``/``.idx`` pairs) see the real one."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{name}")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


@contextlib.contextmanager
def atomic_paths(*paths: str) -> Iterator[Tuple[str, ...]]:
    """Temporary paths for ``paths``; on success each replaces its final path, in order."""
    for path in paths:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporaries = tuple(_temporary_name(path) for path in paths)
    try:
        yield temporaries
        for temporary, path in zip(temporaries, paths):
            os.replace(temporary, path)
    finally:
        for temporary in temporaries:  # nothing is left after a replace; all of them after an error
            _remove(temporary)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", encoding: str = "utf-8", **open_options):
    """``open(path, mode)`` that appears under ``path`` only once the block has finished."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write writes whole files (mode 'w' or 'wb'), not {mode!r}")
    with atomic_paths(path) as (temporary,):
        text = "b" not in mode
        with open(temporary, mode, encoding=encoding if text else None, **open_options) as handle:
            yield handle


def _files_in_write_order(root: str) -> List[str]:
    files = [os.path.join(directory, name) for directory, _, names in os.walk(root) for name in names]
    return sorted(files, key=lambda path: (os.stat(path).st_mtime_ns, path))


@contextlib.contextmanager
def atomic_directory(destdir: str) -> Iterator[str]:
    """A staging directory for everything that goes into ``destdir``.

    On success: a missing ``destdir`` is the staging directory renamed (one atomic step); an
    existing one receives the staged files (each replaced atomically, oldest first; files the
    run did not write are left alone). On error the staging directory is removed.
    Paths recorded *inside* the outputs must name ``destdir``, not the staging directory.
    """
    destdir = os.path.abspath(destdir)
    os.makedirs(os.path.dirname(destdir), exist_ok=True)
    staging = _temporary_name(destdir)
    os.makedirs(staging)
    try:
        yield staging
        if not os.path.isdir(destdir):
            os.rename(staging, destdir)
            return
        for path in _files_in_write_order(staging):
            target = os.path.join(destdir, os.path.relpath(path, staging))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(path, target)
    finally:
        _remove(staging)
