"""Fetch stage: download, validate and resize candidate images.

Modules: ``fetcher`` (the stage function and its config), ``downloader`` (concurrent
downloads), ``politeness`` (per-host pacing), ``robots_txt`` and ``robots_tag``
(robots.txt and X-Robots-Tag opt-outs), ``health`` (error rates), ``retry`` and
``resume`` (what is retried and what is kept), ``resizer`` (image checks and resizing),
``pool`` (decoder processes) and ``cli`` (`wit fetch`). This file imports
nothing, so that decoder processes load only what ``resizer`` needs.
"""
