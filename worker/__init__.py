"""worker: a scheduled scraping and alerting daemon for news listings."""

__version__ = "0.1.0"
USER_AGENT = f"worker/{__version__} (news listing monitor; +https://example.invalid/worker)"
