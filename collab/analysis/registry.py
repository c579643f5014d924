"""The analyses installed here: Python entry points in the group ``collab.analyses``.

A package offers an analysis by naming its class in its own metadata, e.g. in pyproject.toml::

    [project.entry-points."collab.analyses"]
    tissue-qc = "vendor_qc.analysis:TissueQC"

The entry point's name is the analysis's name in the CLI and the API (docs/analysis.md).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from collab.analysis.base import Analysis

GROUP = "collab.analyses"
# The analyses a new slide gets unless told otherwise (``--analyse-on-registration``).
DEFAULT_ON_REGISTRATION = "slide-qc"


class UnknownAnalysis(LookupError):
    """No analysis of that name is installed (the message says which are)."""


def installed() -> list[str]:
    """The names of the installed analyses, sorted."""
    return sorted({entry.name for entry in entry_points(group=GROUP)})


def load(name: str) -> Analysis:
    """An instance, with its default parameters, of the analysis called ``name``."""
    for entry in entry_points(group=GROUP):
        if entry.name == name:
            kind = entry.load()
            if not (isinstance(kind, type) and issubclass(kind, Analysis)):
                raise UnknownAnalysis(f"{entry.value} (analysis {name!r}) is not a collab Analysis")
            if kind.name != name:  # results carry the class's name: both must say the same
                raise UnknownAnalysis(f"{entry.value} calls itself {kind.name!r}, not {name!r}")
            return kind()
    names = ", ".join(installed()) or "none"
    raise UnknownAnalysis(f"no analysis is called {name!r} (installed: {names})")


def on_registration(text: str) -> tuple[str, ...]:
    """The analyses named by ``--analyse-on-registration`` (comma-separated; "none": none),
    each installed, else UnknownAnalysis."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if names in ((), ("none",)):
        return ()
    known = installed()
    for name in names:
        if name not in known:
            listed = ", ".join(known) or "none"
            raise UnknownAnalysis(
                f"--analyse-on-registration: no analysis is called {name!r} (installed: {listed}; or 'none')"
            )
    return names
