"""Fetch stage: download, validate and resize candidate images.

Modules: ``fetcher`` (the stage function and its config), ``downloader`` (concurrent
downloads), ``resizer`` (image checks and resizing), ``pool`` (decoder processes),
``robots_tag`` (X-Robots-Tag opt-outs) and ``cli`` (`wit fetch`). This file imports
nothing, so that decoder processes load only what ``resizer`` needs.
"""
