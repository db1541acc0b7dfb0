"""Replay the HTTP responses stored in WARC files through a local HTTP proxy.

``wit replay WARC...`` indexes the response and revisit records of the files once at start
and then responds to absolute-form proxy requests (``GET http://host/path HTTP/1.1``) with the
archived status, headers and payload of that URL. A URL that is not in the archive gets
404 with ``X-Replay: miss``; nothing is forwarded to the network. The fetch stage uses it
through ``HttpConfig.proxy`` (``wit fetch --proxy URL`` or ``[fetch] proxy``), so archived
pages and images go through the same download, validation and resize code offline.

The archive contains no TLS sessions, so https URLs are also sent to the proxy as plain
absolute-form requests (``GET https://host/path``), which the fetch client does when a
proxy is set. ``CONNECT`` is rejected with 405.
"""
