"""A tqdm progress bar when asked for, a silent stand-in otherwise (tqdm is imported only when needed)."""

from __future__ import annotations

from typing import Any


class NoBar:
    """Does nothing: the bar of a run without progress output."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(progress: bool, total: int, desc: str) -> Any:
    """``tqdm.auto.tqdm`` (a widget in notebooks) when ``progress``, else :class:`NoBar`."""
    if not progress:
        return NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="clip")
