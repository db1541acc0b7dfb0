"""Report stage: an HTML page with plots and tables that summarise a run folder.

``write_report`` is imported on first use, because it loads matplotlib.
"""

__all__ = ["write_report"]


def __getattr__(name: str):
    if name == "write_report":
        from wit_builder.report.page import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
