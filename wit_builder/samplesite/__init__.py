"""A generated photo club web site with known ground truth, for testing the harvest stage offline."""

from wit_builder.samplesite.build import Appearance, Site, build_site, photo_urls
from wit_builder.samplesite.server import serve_site, site_app

__all__ = ["Appearance", "Site", "build_site", "photo_urls", "serve_site", "site_app"]
