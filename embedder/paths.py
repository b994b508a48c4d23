"""User paths to files: single files, folders (searched recursively), globs (``**`` allowed), URLs."""

from __future__ import annotations

import glob
from pathlib import Path

from embedder.errors import InputNotFoundError
from embedder.rasterfile import is_url


def expand_paths(
    paths: list[str], suffixes: tuple[str, ...], what: str, *, any_file_in_globs: bool = False
) -> list[str]:
    """Files, folders and globs as a list of files, in the order given, without repeats.

    Args:
        paths: what the user gave (URLs are kept as they are).
        suffixes: file name endings a folder yields (lower case, e.g. ``(".tif", ".tiff")``);
            globs yield them too unless ``any_file_in_globs``.
        what: what the files are, for messages (``source``, ``tessera``).
        any_file_in_globs: a glob yields every file it matches (the user named them).

    Raises:
        InputNotFoundError: a path does not exist, or a folder or glob holds no such file.
    """
    kinds = "/".join(suffixes)
    out: list[str] = []
    for pat in paths:
        if is_url(pat):
            out.append(pat)
        elif any(ch in pat for ch in "*?["):
            hits = sorted(
                p
                for p in glob.glob(pat, recursive=True)
                if Path(p).is_file() and (any_file_in_globs or p.lower().endswith(suffixes))
            )
            if not hits:
                raise InputNotFoundError(
                    f"the glob {pat!r} matches no {'' if any_file_in_globs else kinds + ' '}file; check the "
                    "path (quote it so the shell does not expand it) and use '**' to search sub-folders"
                )
            out.extend(hits)
        elif Path(pat).is_dir():
            hits = sorted(str(p) for p in Path(pat).rglob("*") if p.name.lower().endswith(suffixes))
            if not hits:
                raise InputNotFoundError(f"the folder {pat!r} holds no {kinds} file of {what}")
            out.extend(hits)
        elif Path(pat).is_file():
            out.append(pat)
        else:
            raise InputNotFoundError(f"{what} {pat!r} does not exist; give an existing file, folder or glob")
    return list(dict.fromkeys(out))
