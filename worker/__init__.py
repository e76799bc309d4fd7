"""worker: a scheduled scraping and alerting daemon for news listings."""

from __future__ import annotations

__version__ = "0.1.0"
DISTRIBUTION = (
    "news-listing-worker"  # the distribution (pyproject's [project] name) this package ships in
)


def _homepage() -> str | None:
    """The project's URL, `[project.urls] Homepage` in pyproject.toml: a site owner who sees our
    requests in their logs can find out who we are and how to reach us.

    Read from the installed distribution's metadata when this package is the one installed
    (another distribution may be named the same); from the pyproject.toml beside the package
    when run from a source tree (PYTHONPATH, an editable install); else None.
    """
    from pathlib import Path

    here = Path(__file__).resolve()
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        dist = distribution(DISTRIBUTION)
        if Path(str(dist.locate_file("worker/__init__.py"))).resolve() == here:
            for entry in dist.metadata.get_all("Project-URL") or []:
                label, _, url = entry.partition(",")
                if label.strip().lower() == "homepage" and url.strip():
                    return url.strip()
    except (PackageNotFoundError, OSError, ValueError):
        pass
    pyproject = here.parent.parent / "pyproject.toml"
    try:
        import tomllib

        with open(pyproject, "rb") as file:
            project = tomllib.load(file).get("project", {})
        url = project.get("urls", {}).get("Homepage")
        return url if isinstance(url, str) and url else None
    except (OSError, ValueError):
        return None


HOMEPAGE = _homepage()
USER_AGENT = f"worker/{__version__} (news listing monitor" + (
    f"; +{HOMEPAGE})" if HOMEPAGE else ")"
)
